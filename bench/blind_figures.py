#!/usr/bin/env python3
"""The classifier figures the issues report, from `kefu classify` output, for labelled files.

    python3 bench/blind_figures.py [--kefu PATH] FILE.tsv [FILE.tsv ...]

Runs `kefu classify` over each file's texts (one process per file) and prints, per file and
over all of them: accuracy with `unknown` a class, in-scope and unknown recall, accuracy by
length (under 12, 12-25, over 25 characters), the share answered at once (`handoff` false),
the wrong share among those, and how often the gold intent is among the 3 suggestions.
"""
import json
import subprocess
import sys


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            line = line.rstrip("\n")
            if i == 0 or not line:
                continue
            text, intent = line.split("\t")
            rows.append((text, intent))
    return rows


def classify(kefu, texts):
    out = subprocess.run([kefu, "classify"], input="\n".join(texts) + "\n",
                         capture_output=True, text=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def figures(pairs):
    n = len(pairs)
    ok = sum(v["intent"] == g for g, v in pairs)
    ins = [(g, v) for g, v in pairs if g != "unknown"]
    unk = [(g, v) for g, v in pairs if g == "unknown"]
    def acc(sub):
        return (sum(v["intent"] == g for g, v in sub) / len(sub), len(sub)) if sub else (float("nan"), 0)
    short = [(g, v) for g, v in pairs if len(v["text"]) < 12]
    mid = [(g, v) for g, v in pairs if 12 <= len(v["text"]) <= 25]
    long_ = [(g, v) for g, v in pairs if len(v["text"]) > 25]
    answered = [(g, v) for g, v in pairs if not v["handoff"]]
    wrong = sum(v["intent"] != g for g, v in answered)
    top3 = sum(any(s["intent"] == g for s in v["suggestions"][:3]) for g, v in ins)
    return {
        "n": n,
        "accuracy": ok / n,
        "in_scope_recall": acc(ins)[0],
        "unknown_recall": acc(unk)[0],
        "short": acc(short), "mid": acc(mid), "long": acc(long_),
        "answered": len(answered) / n,
        "wrong_answered": (wrong / len(answered)) if answered else 0.0,
        "wrong_answered_n": (wrong, len(answered)),
        "top3": top3 / len(ins) if ins else float("nan"),
    }


def show(name, f):
    print(f"{name}: n {f['n']}  accuracy {f['accuracy']:.3f}  in-scope/unknown recall "
          f"{f['in_scope_recall']:.3f}/{f['unknown_recall']:.3f}  <12 {f['short'][0]:.3f} ({f['short'][1]})  "
          f"12-25 {f['mid'][0]:.3f} ({f['mid'][1]})  >25 {f['long'][0]:.3f} ({f['long'][1]})  "
          f"answered {f['answered']:.1%}  wrong among answered {f['wrong_answered']:.1%} "
          f"({f['wrong_answered_n'][0]} of {f['wrong_answered_n'][1]})  gold in top 3 {f['top3']:.3f}")


def main(argv):
    kefu = "target/release/kefu"
    if argv[:1] == ["--kefu"]:
        kefu, argv = argv[1], argv[2:]
    everything = []
    for path in argv:
        rows = load(path)
        verdicts = classify(kefu, [t for t, _ in rows])
        pairs = [(g, v) for (_, g), v in zip(rows, verdicts)]
        everything += pairs
        show(path, figures(pairs))
    if len(argv) > 1:
        show("all", figures(everything))


if __name__ == "__main__":
    main(sys.argv[1:])
