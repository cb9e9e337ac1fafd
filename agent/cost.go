package agent

import (
	"fmt"
	"strconv"
	"strings"
)

// Price is what a model costs in US dollars per million tokens.
type Price struct {
	Input  float64
	Output float64
}

// Cost is the price of a call with the given token counts.
func (p Price) Cost(promptTokens, completionTokens int) float64 {
	return (float64(promptTokens)*p.Input + float64(completionTokens)*p.Output) / 1e6
}

// prices are list prices (USD per 1M tokens) of the teacher models FireAct-style
// runs use; prefix matches cover dated snapshots ("gpt-4-0613"). Unknown models
// cost 0 unless --price says otherwise.
var prices = []struct {
	prefix string
	price  Price
}{
	{"gpt-4o-mini", Price{0.15, 0.60}},
	{"gpt-4o", Price{2.50, 10.00}},
	{"gpt-4.1-nano", Price{0.10, 0.40}},
	{"gpt-4.1-mini", Price{0.40, 1.60}},
	{"gpt-4.1", Price{2.00, 8.00}},
	{"gpt-4-turbo", Price{10.00, 30.00}},
	{"gpt-4-32k", Price{60.00, 120.00}},
	{"gpt-4", Price{30.00, 60.00}},
	{"gpt-3.5-turbo-instruct", Price{1.50, 2.00}},
	{"gpt-3.5-turbo", Price{0.50, 1.50}},
}

// PriceOf returns the list price of a model (longest matching name prefix)
// and whether one is known.
func PriceOf(model string) (Price, bool) {
	m := strings.ToLower(model)
	for _, p := range prices { // ordered so that longer prefixes come first
		if strings.HasPrefix(m, p.prefix) {
			return p.price, true
		}
	}
	return Price{}, false
}

// ParsePrice parses "INPUT,OUTPUT" in USD per million tokens.
func ParsePrice(s string) (Price, error) {
	in, out, ok := strings.Cut(s, ",")
	if !ok {
		return Price{}, fmt.Errorf("agent: price %q: want INPUT,OUTPUT (USD per 1M tokens)", s)
	}
	a, err1 := strconv.ParseFloat(strings.TrimSpace(in), 64)
	b, err2 := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err1 != nil || err2 != nil || a < 0 || b < 0 {
		return Price{}, fmt.Errorf("agent: price %q: want two non-negative numbers", s)
	}
	return Price{a, b}, nil
}
