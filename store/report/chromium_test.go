package report

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package (Makefile DEB_PKGS, installed
// by `make deps`, which `make test` runs first) puts the browser.
const chromiumPath = "/usr/bin/chromium"

// plotCheck is what the page reports about one plot.
type plotCheck struct {
	ID     string  `json:"id"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	Marks  int     `json:"marks"` // drawn bars, lines and points with a non-empty box
	Texts  int     `json:"texts"`
}

// TestHTMLInChromium opens the report in a headless Chromium with the network
// out of reach and checks that every plot rendered: a laid-out <svg> with
// visible marks, no console errors, and no request for anything outside the file.
func TestHTMLInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no %s (install it with `make deps`; `make test` does): %v", chromiumPath, err)
	}
	f := newFixture(t)
	rep, err := Build(context.Background(), f.st, Options{DiffA: "llama-react", DiffB: "llama-ft-react"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	w, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := HTML(w, rep); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Any attempt to reach the network fails fast instead of hanging.
		chromedp.Flag("proxy-server", "127.0.0.1:9"),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	var (
		mu       sync.Mutex
		problems []string
		requests []string
	)
	err = chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				msg := fmt.Sprintf("console.%s", e.Type)
				for _, a := range e.Args {
					msg += fmt.Sprintf(" %s", a.Value)
				}
				problems = append(problems, msg)
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				problems = append(problems, fmt.Sprintf("log %s (%s): %s", e.Entry.Level, e.Entry.Source, e.Entry.Text))
			}
		case *network.EventRequestWillBeSent:
			requests = append(requests, e.Request.URL)
		}
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	u := url.URL{Scheme: "file", Path: page}
	if err := chromedp.Do(bctx, chromedp.Navigate(u.String()), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("opening %s: %v", u.String(), err)
	}
	plots, err := chromedp.Run(bctx, chromedp.Evaluate[[]plotCheck](`Array.from(document.querySelectorAll("svg.plot")).map(svg => {
		const box = svg.getBoundingClientRect();
		const marks = Array.from(svg.querySelectorAll("rect.bar, polyline, circle")).filter(el => {
			const b = el.getBBox();
			return b.width > 0 && b.height > 0 || (el.tagName === "polyline" && (b.width > 0 || b.height > 0));
		});
		return {id: svg.id, width: box.width, height: box.height, marks: marks.length,
			texts: svg.querySelectorAll("text").length};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]plotCheck{}
	for _, p := range plots {
		byID[p.ID] = p
	}
	for _, tc := range []struct {
		id       string
		minMarks int
	}{
		{"plot-em", len(rep.Runs)},
		{"plot-noise", len(rep.Runs)},
		{"plot-turns", len(rep.Runs)},
		{"plot-loss", 1 + 30}, // the line and its points
	} {
		p, ok := byID[tc.id]
		switch {
		case !ok:
			t.Errorf("%s: not in the page", tc.id)
		case p.Width < 100 || p.Height < 100:
			t.Errorf("%s: laid out at %gx%g", tc.id, p.Width, p.Height)
		case p.Marks < tc.minMarks || p.Texts < 5:
			t.Errorf("%s: %d visible marks and %d texts, want at least %d marks", tc.id, p.Marks, p.Texts, tc.minMarks)
		}
	}
	// Let late console messages arrive before reading them.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`new Promise(r => setTimeout(() => r(true), 100))`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(problems, "\n"))
	}
	for _, r := range requests {
		if !strings.HasPrefix(r, "file://") && !strings.HasPrefix(r, "data:") {
			t.Errorf("the page requested %s", r)
		}
	}
	t.Logf("%d plots checked: %+v", len(plots), plots)
}
