#!/usr/bin/env python3
"""Writes the corpus fixtures of agent/index_test.go in the real layouts.

hotpotqa/: HotpotQA's abstracts dump (enwiki-20171001-pages-meta-current-
withlinks-abstracts), a tree of bz2 files of JSON lines with the dump's
fields: id (a string), url, title, text (the abstract's sentences, each after
the first starting with its space), charoffset (per sentence, the [start, end)
of each token), text_with_links and charoffset_with_links.
bad-hotpotqa/: the same layout with malformed lines.
beir/corpus.jsonl: BEIR's corpus (_id, title, text, metadata).

Go's compress/bzip2 only decompresses, hence this script; run it from this
directory with python3 and commit its output.
"""
import bz2, json, os, re

def offsets(sent, base=0):
    return [[base + m.start(), base + m.end()] for m in re.finditer(r"\S+", sent)]

def page(pid, title, sents, links=None):
    links = links or {}
    with_links = []
    for s in sents:
        for word, target in links.items():
            s = s.replace(word, '<a href="%s">%s</a>' % (target.replace(" ", "%20"), word), 1)
        with_links.append(s)
    return {"id": str(pid), "url": "https://en.wikipedia.org/wiki?curid=%d" % pid, "title": title,
            "text": sents, "charoffset": [offsets(s) for s in sents],
            "text_with_links": with_links, "charoffset_with_links": [offsets(s) for s in with_links]}

def write_bz2(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with bz2.open(path, "wt", encoding="utf-8") as f:
        for l in lines:
            f.write(l + "\n")

root = "hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts"
write_bz2(root + "/AA/wiki_00.bz2", [json.dumps(p) for p in [
    page(12, "The Magic Flute", ["The Magic Flute is an opera in two acts by Wolfgang Amadeus Mozart.",
                                 " It premiered in Vienna in 1791."], {"Wolfgang Amadeus Mozart": "Wolfgang Amadeus Mozart"}),
    page(25, "Wolfgang Amadeus Mozart", ["Wolfgang Amadeus Mozart was a composer of the Classical period.",
                                         " He was born in Salzburg.", " He wrote more than 800 works."], {"Salzburg": "Salzburg"}),
    page(39, "Mozart (disambiguation)", []),  # the dump has pages with an empty abstract
]])
write_bz2(root + "/AA/wiki_01.bz2", [json.dumps(page(290, "Salzburg", [
    "Salzburg is the fourth-largest city in Austria.", " It is the capital of the state of Salzburg.",
    " Its old town is known for its Baroque architecture.", " It lies north of the Alps.",
    " It was ruled by prince-archbishops.", " The old town lies on the left bank of the Salzach river.",
    " The Salzach river flows into the Inn."], {"Salzach": "Salzach"}))])
write_bz2(root + "/AB/wiki_00.bz2", [json.dumps(page(303, "Salzach", [
    "The Salzach is a river in Austria and Germany.", " It flows through Salzburg."]), ensure_ascii=False)])

bad = "bad-hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts"
write_bz2(bad + "/AA/wiki_00.bz2", [
    json.dumps(page(1, "Good Page", ["Good Page is the one valid line of this file."])),
    '{"id": "2", "url": "https://en.wikipedia.org/wiki?curid=2", "title": "Cut Off", "text": ["This line',
    json.dumps({"id": "3", "url": "https://en.wikipedia.org/wiki?curid=3", "title": "Flat", "text": "a string, not sentences"}),
    json.dumps({"id": "4", "url": "https://en.wikipedia.org/wiki?curid=4", "title": "Processed", "text": [["Processed"], ["A paragraph."]]}),
    json.dumps({"id": "5", "url": "https://en.wikipedia.org/wiki?curid=5", "text": ["No title here."]}),
])
write_bz2(bad + "/AB/wiki_00.bz2", ["not json at all", "[1, 2, 3]"])

os.makedirs("beir", exist_ok=True)
with open("beir/corpus.jsonl", "w", encoding="utf-8") as f:
    for d in [{"_id": "12", "title": "The Magic Flute", "text": "The Magic Flute is an opera in two acts by Wolfgang Amadeus Mozart.", "metadata": {}},
              {"_id": "290", "title": "Salzburg", "text": "Salzburg is the fourth-largest city in Austria.", "metadata": {}},
              {"_id": "77", "title": "", "text": "A passage without a title, as some BEIR corpora have.", "metadata": {"url": "x"}}]:
        f.write(json.dumps(d) + "\n")
    f.write('{"_id": "78", "title": "Broken", "text": 7}\n')
