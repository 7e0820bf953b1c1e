"""word2vec side by side with gensim: training speed (words/s), quality and peak memory on the
same corpus and settings.

    python bench/word2vec_gensim.py                 # speed at 1 and 2 workers, quality over 3 seeds, memory
    python bench/word2vec_gensim.py --only speed --workers 1 --repeats 5
    FASTNN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell python bench/word2vec_gensim.py --only speed
                                                    # both held to AVX2 (gensim's loops call SciPy's BLAS)

Corpus: the bundled tinyshakespeare text, one sentence per speech (fastnn.text.
tinyshakespeare_sentences: ~7,200 speeches, ~200,000 words); every tenth speech is held out for
the negative-sampling loss. Settings: vector_size 100, window 5, negative 5, sample 1e-3,
min_count 5, epochs 5 (gensim's defaults apart from sg and workers), the same for both.

- Speed: each library trains from the same in-memory token lists (build_vocab untimed); the
  timed part is train(); words/s = raw words trained / seconds. The two libraries alternate,
  `--repeats` times each; the median is reported, and the ratio of the medians.
- Quality, for each of `--seeds` seeds: analogy accuracy on gensim's questions-words.txt and the
  Spearman correlations on gensim's wordsim353.tsv and simlex999.txt (all three ship with
  gensim's test data; on this
  corpus most questions and pairs are out of vocabulary, so the counts are printed), and the
  held-out loss (fastnn.text.negative_sampling_loss: the same pairs and negatives for both
  models). Means and standard deviations over seeds.
- Memory: each library builds and trains in a fresh process; the peak resident size minus the
  size just before build_vocab.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

SETTINGS = dict(vector_size=100, window=5, negative=5, sample=1e-3, min_count=5, epochs=5)


def corpus():
    from fastnn.text import tinyshakespeare_sentences

    sents = tinyshakespeare_sentences()
    held = sents[::10]
    train = [s for i, s in enumerate(sents) if i % 10]
    return train, held


def make(lib, sg, workers, seed):
    kw = dict(SETTINGS, sg=sg, workers=workers, seed=seed)
    if lib == "fastnn":
        from fastnn.text import Word2Vec

        return Word2Vec(**kw)
    from gensim.models import Word2Vec

    return Word2Vec(**kw)


def train(lib, sents, sg, workers, seed):
    m = make(lib, sg, workers, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.build_vocab(sents)
        t0 = time.perf_counter()
        m.train(sents, total_examples=m.corpus_count, epochs=m.epochs)
        dt = time.perf_counter() - t0
    return m, dt


def test_data(name):
    import gensim

    return os.path.join(os.path.dirname(gensim.__file__), "test", "test_data", name)


def quality(m, held):
    from fastnn.text import negative_sampling_loss

    wv = m.wv
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc, sections = wv.evaluate_word_analogies(test_data("questions-words.txt"))
        pearson, spearman, oov = wv.evaluate_word_pairs(test_data("wordsim353.tsv"))
        _, simlex, simlex_oov = wv.evaluate_word_pairs(test_data("simlex999.txt"))
    total = sections[-1]
    n_q = len(total["correct"]) + len(total["incorrect"])
    words = list(wv.index_to_key)
    counts = [wv.get_vecattr(w, "count") for w in words]
    loss = negative_sampling_loss(
        wv.vectors, m.syn1neg, wv.key_to_index, held, words, counts, window=5, sg=bool(m.sg), seed=0
    )
    return dict(
        analogy=float(acc),
        analogy_questions=n_q,
        spearman=float(spearman[0]),
        pairs_oov=float(oov),
        simlex=float(simlex[0]),
        simlex_oov=float(simlex_oov),
        loss=loss,
    )


def speed(sents, args):
    n_words = sum(len(s) for s in sents)
    rows = []
    for sg in (1, 0):
        for workers in args.workers:
            t = {"fastnn": [], "gensim": []}
            for _ in range(args.repeats):
                for lib in ("fastnn", "gensim"):
                    _, dt = train(lib, sents, sg, workers, 1)
                    t[lib].append(dt)
            f, g = statistics.median(t["fastnn"]), statistics.median(t["gensim"])
            wf, wg = SETTINGS["epochs"] * n_words / f, SETTINGS["epochs"] * n_words / g
            rows.append(dict(sg=sg, workers=workers, fastnn_wps=wf, gensim_wps=wg, ratio=wf / wg))
            print(
                f"{'skip-gram' if sg else 'CBOW':>9} workers={workers}: fastnn {wf:>10,.0f} words/s, "
                f"gensim {wg:>10,.0f} words/s, ratio {wf / wg:.2f}x",
                flush=True,
            )
    return rows


def quality_table(sents, held, args):
    rows = []
    for sg in (1, 0):
        per = {"fastnn": [], "gensim": []}
        for seed in args.seeds:
            for lib in per:
                m, _ = train(lib, sents, sg, 1, seed)
                per[lib].append(quality(m, held))
        row = {"sg": sg}
        for lib, qs in per.items():
            for k in ("analogy", "spearman", "simlex", "loss"):
                v = [q[k] for q in qs]
                row[f"{lib}_{k}"] = statistics.mean(v)
                row[f"{lib}_{k}_std"] = statistics.stdev(v) if len(v) > 1 else 0.0
            row[f"{lib}_questions"] = qs[0]["analogy_questions"]
            row[f"{lib}_pairs_oov"] = qs[0]["pairs_oov"]
            row[f"{lib}_simlex_oov"] = qs[0]["simlex_oov"]
        rows.append(row)
        print(
            f"{'skip-gram' if sg else 'CBOW':>9}: analogy {row['fastnn_analogy']:.3f} vs {row['gensim_analogy']:.3f} "
            f"({row['fastnn_questions']} / {row['gensim_questions']} questions in vocabulary); "
            f"wordsim353 Spearman {row['fastnn_spearman']:.3f} vs {row['gensim_spearman']:.3f} "
            f"(pairs out of vocabulary {row['fastnn_pairs_oov']:.0f}%); SimLex-999 Spearman "
            f"{row['fastnn_simlex']:.3f} vs {row['gensim_simlex']:.3f} ({row['fastnn_simlex_oov']:.0f}% out); held-out loss {row['fastnn_loss']:.4f} "
            f"vs {row['gensim_loss']:.4f} (std {row['fastnn_loss_std']:.4f} / {row['gensim_loss_std']:.4f}) "
            f"[fastnn vs gensim, mean of {len(args.seeds)} seeds]",
            flush=True,
        )
    return rows


def _gensim_blas():
    """The core type of the OpenBLAS whose sdot / saxpy gensim's inner loops call (SciPy's), as
    threadpoolctl reports it: OPENBLAS_CORETYPE=Haswell holds it to AVX2."""
    import gensim.models.word2vec_inner  # noqa: F401  (loads SciPy's BLAS)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    found = [i for i in threadpool_info() if "scipy" in i.get("filepath", "") and i.get("internal_api") == "openblas"]
    return found[0].get("architecture", "unknown") if found else "not OpenBLAS"


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes():
    """VmHWM: this process's peak resident size (ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_child(lib, sg):
    sents, _ = corpus()
    make(lib, sg, 1, 1)  # imports done before the baseline
    base = _rss_bytes()
    train(lib, sents, sg, 1, 1)
    peak = _peak_rss_bytes()
    print(json.dumps({"lib": lib, "base": base, "peak": peak, "delta": peak - base}))


def memory(args):
    rows = []
    for sg in (1, 0):
        got = {}
        for lib in ("fastnn", "gensim"):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", lib, "--sg", str(sg)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            got[lib] = json.loads(out.strip().splitlines()[-1])["delta"]
        rows.append(dict(sg=sg, fastnn_bytes=got["fastnn"], gensim_bytes=got["gensim"]))
        print(
            f"{'skip-gram' if sg else 'CBOW':>9}: peak memory over the baseline: fastnn {got['fastnn'] / 2**20:.1f} MiB, "
            f"gensim {got['gensim'] / 2**20:.1f} MiB ({got['fastnn'] / max(got['gensim'], 1):.2f}x)",
            flush=True,
        )
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["speed", "quality", "memory"], action="append")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--json", help="write the results here")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    p.add_argument("--sg", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.sg)
    import fastnn
    import gensim
    from fastnn._config import config

    sents, held = corpus()
    blas = _gensim_blas()
    print(
        f"corpus: tinyshakespeare, {len(sents):,} speeches, {sum(map(len, sents)):,} words (held out: {len(held):,} "
        f"speeches); {SETTINGS}; gensim {gensim.__version__}, fastnn {fastnn.__version__} "
        f"(isa {config()['isa_selected']}); gensim's BLAS: {blas}",
        flush=True,
    )
    only = set(args.only or ["speed", "quality", "memory"])
    out = {"settings": SETTINGS, "gensim": gensim.__version__, "isa": config()["isa_selected"], "gensim_blas": blas}
    if "speed" in only:
        out["speed"] = speed(sents, args)
    if "quality" in only:
        out["quality"] = quality_table(sents, held, args)
    if "memory" in only:
        out["memory"] = memory(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
