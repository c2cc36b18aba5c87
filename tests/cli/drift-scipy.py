#!/usr/bin/python3
"""The reference for llm-monitor drift: the same statistics computed with Debian's SciPy and
NumPy, step for step as Evidently runs them (calculations/stattests: ks_stattest,
chisquare_stattest, z_stattest, wasserstein_distance_norm, jensenshannon, psi, and
utils.get_binned_data; registry._get_default_stattest for the automatic choice).

    drift-scipy.py samples DIR         every statistic on DIR's fixed samples (*.ref / *.cur,
                                       one value per line), as JSON
    drift-scipy.py columns REF CUR [K] the per-column report llm-monitor drift --format json
                                       gives for two request logs (llm-serve's record shape),
                                       as JSON; K: the vocabulary size of the word columns
    drift-scipy.py kstwo               kstwo.sf and smirnov at points that take every branch
                                       of scipy's _kolmogn, and chi2.sf points

Run with /usr/bin/python3 (Debian's python3-scipy and python3-numpy)."""
import gzip
import json
import math
import os
import sys
import unicodedata
from collections import Counter

import numpy as np
from scipy import stats
from scipy.spatial import distance
from scipy import special


def binned(ref, cur, numeric, fill):
    """Evidently's get_binned_data: Sturges bins over both samples for a numeric column with
    more than 20 distinct reference values, value counts over the union of categories
    otherwise; zeros filled as feel_zeroes does."""
    ref = list(ref)
    cur = list(cur)
    if numeric and len(set(ref)) > 20:
        bins = np.histogram_bin_edges(np.array(ref + cur, dtype=float), bins="sturges")
        r = np.histogram(np.array(ref, dtype=float), bins)[0] / len(ref)
        c = np.histogram(np.array(cur, dtype=float), bins)[0] / len(cur)
    else:
        keys = sorted(set(ref) | set(cur))
        rc, cc = Counter(ref), Counter(cur)
        r = np.array([rc[k] / len(ref) for k in keys])
        c = np.array([cc[k] / len(cur) for k in keys])
    if fill:
        for v in (r, c):
            m = min(v[v != 0])
            np.place(v, v == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return r, c


def psi(ref, cur, numeric):
    r, c = binned(ref, cur, numeric, True)
    value = 0.0
    for i in range(len(r)):
        value += (r[i] - c[i]) * np.log(r[i] / c[i])
    return float(value), len(r)


def js(ref, cur, numeric):
    r, c = binned(ref, cur, numeric, False)
    return float(distance.jensenshannon(r, c)), len(r)


def chisq(ref, cur):
    keys = sorted(set(ref) | set(cur))
    rc, cc = Counter(ref), Counter(cur)
    k = len(cur) / len(ref)
    f_exp = [rc[key] * k for key in keys]
    f_obs = [cc[key] for key in keys]
    with np.errstate(divide="ignore"):
        s, p = stats.chisquare(f_obs, f_exp)
    return float(s), float(p), len(keys)


def ztest(ref, cur):
    if len(set(ref)) == 1 and len(set(cur)) == 1 and set(ref) == set(cur):
        return None, 1.0
    key = sorted(set(ref) | set(cur))[0]
    a = [0 if x == key else 1 for x in ref]
    b = [0 if x == key else 1 for x in cur]
    n1, n2 = len(a), len(b)
    p1, p2 = float(sum(a)) / n1, float(sum(b)) / n2
    P = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(P * (1 - P) * (1.0 / n1 + 1.0 / n2))
    return float(z), float(2 * (1 - stats.norm.cdf(np.abs(z))))


def wnorm(ref, cur):
    w = stats.wasserstein_distance(ref, cur)
    return float(w), float(w / max(np.std(ref), 0.001))


def read_values(path):
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    try:
        return [float(x) for x in lines], True
    except ValueError:
        return lines, False


def samples(d):
    out = {}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".ref"):
            continue
        base = name[:-4]
        ref, numeric = read_values(os.path.join(d, name))
        cur, _ = read_values(os.path.join(d, base + ".cur"))
        r = {"n_ref": len(ref), "n_cur": len(cur)}
        if numeric:
            res = stats.ks_2samp(ref, cur)
            r["ks_d"], r["ks_p"] = float(res.statistic), float(res.pvalue)
            r["ks_exact"] = max(len(ref), len(cur)) <= 10000
            r["wasserstein"], r["wasserstein_norm"] = wnorm(ref, cur)
            r["std_ref"] = float(np.std(ref))
            edges = np.histogram_bin_edges(np.array(ref + cur), bins="sturges")
            r["sturges_bins"] = len(edges) - 1
        else:
            r["chisquare"], r["chisquare_p"], r["categories"] = chisq(ref, cur)
            r["z"], r["z_p"] = ztest(ref, cur)
        r["psi"], r["psi_bins"] = psi(ref, cur, numeric)
        r["jensenshannon"], r["js_bins"] = js(ref, cur, numeric)
        out[base] = r
    return out


def words(text):
    """Runs of letters (L*) and decimal digits (Nd), lower-cased character by character."""
    out, w = [], []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("L") or cat == "Nd":
            low = ch.lower()
            w.append(low if len(low) == 1 else ch)
        elif w:
            out.append("".join(w))
            w = []
    if w:
        out.append("".join(w))
    return out


NUMERIC = ["prompt_chars", "output_chars", "latency_ms", "ttft_ms", "prompt_tokens",
           "completion_tokens", "score"]
CATEGORICAL = ["model", "finish_reason", "status", "key_id"]


def extract(path):
    cols = {c: [] for c in NUMERIC + CATEGORICAL}
    texts = {"prompt_words": [], "output_words": []}
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("kind") == "feedback":
                if isinstance(r.get("score"), (int, float)):
                    cols["score"].append(float(r["score"]))
                continue
            if isinstance(r.get("prompt"), str):
                cols["prompt_chars"].append(float(len(r["prompt"])))
                texts["prompt_words"].append(r["prompt"])
            if isinstance(r.get("output"), str):
                cols["output_chars"].append(float(len(r["output"])))
                texts["output_words"].append(r["output"])
            for c in ("latency_ms", "ttft_ms"):
                if isinstance(r.get(c), (int, float)):
                    cols[c].append(float(r[c]))
            u = r.get("usage") or {}
            for c in ("prompt_tokens", "completion_tokens"):
                if isinstance(u.get(c), int):
                    cols[c].append(float(u[c]))
            for c in ("model", "finish_reason", "key_id"):
                if isinstance(r.get(c), str):
                    cols[c].append(r[c])
            if isinstance(r.get("status"), int) and r["status"]:
                cols["status"].append(str(r["status"]))
    return cols, texts


def vocab(ref_texts, cur_texts, k):
    rc = Counter(w for t in ref_texts for w in words(t))
    top = set(w for w, _ in sorted(rc.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:k])
    conv = lambda texts: [w if w in top else "\x7fother" for t in texts for w in words(t)]
    return conv(ref_texts), conv(cur_texts)


def column(ref, cur, numeric):
    """Evidently's default test for one column and its result."""
    n_values = len(set(ref) | set(cur))
    r = {"n_ref": len(ref), "n_cur": len(cur), "distinct": n_values}
    if len(ref) <= 1000:
        if numeric and n_values > 5:
            res = stats.ks_2samp(ref, cur)
            r.update(test="ks", statistic=float(res.statistic), p_value=float(res.pvalue))
        elif n_values > 2:
            s, p, k = chisq(ref, cur)
            r.update(test="chisquare", statistic=s, p_value=p, bins=k)
        else:
            z, p = ztest(ref, cur)
            r.update(test="z", statistic=z, p_value=p, bins=n_values)
    elif numeric and n_values > 5:
        w, wn = wnorm(ref, cur)
        r.update(test="wasserstein", statistic=wn, p_value=None)
    else:
        v, bins = js(ref, cur, numeric)
        r.update(test="jensenshannon", statistic=v, p_value=None, bins=bins)
    r["score"] = r["p_value"] if r["p_value"] is not None else r["statistic"]
    if r["test"] in ("ks", "chisquare", "z"):
        r["drifted"] = r["score"] < 0.05
    else:
        r["drifted"] = r["score"] >= 0.1
    return r


def columns(ref_path, cur_path, k):
    rcols, rtexts = extract(ref_path)
    ccols, ctexts = extract(cur_path)
    out = {}
    for c in NUMERIC + CATEGORICAL:
        if rcols[c] and ccols[c]:
            out[c] = column(rcols[c], ccols[c], c in NUMERIC)
    for c in ("prompt_words", "output_words"):
        if rtexts[c] and ctexts[c]:
            r, cu = vocab(rtexts[c], ctexts[c], k)
            if r and cu:
                out[c] = column(r, cu, False)
    return out


def kstwo_points():
    # (n, x): Ruben-Gambino both ends, x >= 0.5, DMTW, Pomeranz and 2*smirnov for n <= 140;
    # for n > 140: DMTW, Pelz-Good, 2*smirnov and the zero tail.
    pts = [(10, 0.07), (10, 0.93), (200, 0.004), (20, 0.6), (30, 0.1), (30, 0.2), (30, 0.45),
           (100, 0.08), (140, 0.15), (500, 0.02), (500, 0.05), (500, 0.1), (2000, 0.02),
           (200000, 0.002), (200, 0.02), (150, 0.044), (800, 0.8), (5000, 0.3), (1013, 0.06), (3000, 0.03)]
    out = []
    for n, x in pts:
        out.append({"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n)),
                    "smirnov": float(special.smirnov(n, x))})
    chi = []
    for x, df in [(0.5, 1), (3.84, 1), (10.0, 3), (25.0, 10), (150.0, 120), (1.0, 7),
                  (60.0, 5), (0.01, 2)]:
        chi.append({"x": x, "df": df, "sf": float(stats.chi2.sf(x, df))})
    exact = []
    for n1, n2, d in [(40, 55, 0.3), (60, 60, 0.2), (7, 9, 0.5), (300, 420, 0.1),
                      (1000, 1000, 0.05), (10000, 9000, 0.02), (3, 5, 0.6)]:
        res = stats.ks_2samp(np.arange(n1) / n1, np.arange(n2) / n2 + d)
        exact.append({"n1": n1, "n2": n2, "d": float(res.statistic), "p": float(res.pvalue)})
    return {"kstwo": out, "chi2": chi, "ks_exact": exact}


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "samples":
        r = samples(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "columns":
        r = columns(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 20)
    elif len(sys.argv) == 2 and sys.argv[1] == "kstwo":
        r = kstwo_points()
    else:
        sys.exit(__doc__)
    json.dump(r, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
