"""Fused scaled dot-product attention, B=8 NH=8 HD=64, L=S=512 and 2048, full and causal,
forward and forward+backward: fastnn.ops against torch's SDPA with the flash kernel and the math
backend forced (torch.nn.attention.sdpa_kernel), and the float64 NumPy reference at L=512.
Every result is validated first on its first (batch, head) pair against the reference (the
L=2048 reference of all pairs would take GiBs). The L=2048 calls last seconds: run with few
repeats (`--repeats 3 --min-time 0`). Layer norm is `fastnn bench layernorm`.

Peak extra memory is measured separately (`python -m fastnn.bench.attention --memory`): each
call runs in a fresh interpreter with its inputs (and, for the backward, the forward's results)
in place; its peak resident set is reset just before the call (Linux /proc/self/clear_refs) and
its growth during the call is reported (VmHWM - VmRSS). It includes the outputs: out and lse
(8 MiB at L=512, 32 MiB at L=2048), dq, dk, dv three times that."""

import argparse
import subprocess
import sys
import textwrap

import numpy as np

from fastnn import ops, ref

from .harness import Case, optional, within

torch = optional("torch")
B, NH, HD = 8, 8, 64


def _inputs(b, nh, L, d, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((b, nh, L, d), dtype=np.float32) for _ in range(4)]


def _flops(L, causal, products):
    pairs = L * (L + 1) // 2 if causal else L * L  # causal: only the visible (query, key) pairs
    return 2.0 * products * B_ * NH_ * pairs * HD


def _attention_cases(b, nh, L, causal, math_peer, numpy_peer):
    q, k, v, dout = _inputs(b, nh, L, HD)
    tag = f"B{b} NH{nh} L{L} HD{HD}{' causal' if causal else ''}"
    kw = dict(is_causal=causal)

    def fwd():
        return ops.scaled_dot_product_attention_forward(q, k, v, **kw)[0]

    def fwd_bwd():
        out, lse = ops.scaled_dot_product_attention_forward(q, k, v, **kw)
        return (out,) + ops.scaled_dot_product_attention_backward(dout, q, k, v, out, lse, **kw)

    def first_pair(a):  # validation on (batch 0, head 0) only
        return np.asarray(a)[:1, :1]

    def ref_fwd():
        return ref.scaled_dot_product_attention_forward(first_pair(q), first_pair(k), first_pair(v), **kw)[0]

    def ref_all():
        o = ref_fwd()
        return (o,) + ref.scaled_dot_product_attention_backward(
            first_pair(dout), first_pair(q), first_pair(k), first_pair(v), o, None, **kw
        )

    # float32 scores of 64 terms (|error| ~ 1e-5 here) move each probability by that much relative
    chk_f = within(lambda: (ref_fwd(), 1e-4 * (1 + np.abs(ref_fwd()))))
    want = {}

    def check_fb(got):
        if not want:
            want["r"] = ref_all()
        for g, r in zip(got, want["r"]):
            within(lambda r=r: (r, 2e-4 * (1 + np.abs(r))))(first_pair(g))

    impls_f = {"fastnn": fwd}
    impls_fb = {"fastnn": fwd_bwd}
    if numpy_peer:
        impls_f["numpy"] = lambda: ref.scaled_dot_product_attention_forward(q, k, v, **kw)[0]
    if torch:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        F = torch.nn.functional
        qt, kt, vt, gt = (torch.from_numpy(a) for a in (q, k, v, dout))
        backends = [("torch_flash", SDPBackend.FLASH_ATTENTION)]
        if math_peer:
            backends.append(("torch_math", SDPBackend.MATH))
        for name, be in backends:

            def tf(be=be):
                with torch.no_grad(), sdpa_kernel(be):
                    return F.scaled_dot_product_attention(qt, kt, vt, **kw).numpy()

            def tfb(be=be):
                xs = [a.detach().requires_grad_() for a in (qt, kt, vt)]
                with sdpa_kernel(be):
                    y = F.scaled_dot_product_attention(*xs, **kw)
                y.backward(gt)
                return (y.detach().numpy(),) + tuple(a.grad.numpy() for a in xs)

            impls_f[name], impls_fb[name] = tf, tfb
    check_f = lambda got: chk_f(first_pair(got))
    return [
        Case(f"attention fwd {tag}", impls_f, check_f, flops=_flops(L, causal, 2) * b * nh / (B_ * NH_)),
        Case(f"attention fwd+bwd {tag}", impls_fb, check_fb, flops=_flops(L, causal, 7) * b * nh / (B_ * NH_)),
    ]


B_, NH_ = B, NH


def cases(quick=False):
    if quick:
        res = []
        for causal in (False, True):
            res += _attention_cases(2, 2, 200, causal, True, True)
        return res
    res = []
    for L in (512, 2048):
        for causal in (False, True):
            res += _attention_cases(B, NH, L, causal, math_peer=L <= 512, numpy_peer=False)
    return res


def _peak_rss_kib(impl, L, causal, backward):
    """Peak resident-set growth (KiB) of one call in a fresh interpreter (Linux: the peak is reset
    through /proc/self/clear_refs just before the call, and VmHWM - VmRSS read after it)."""
    code = textwrap.dedent(f"""
        import numpy as np
        impl, L, causal, backward = {impl!r}, {L}, {causal}, {backward}
        rng = np.random.default_rng(0)
        q, k, v, g = [rng.standard_normal(({B}, {NH}, L, {HD}), dtype=np.float32) for _ in range(4)]
        if impl == "fastnn":
            from fastnn import ops
            ops.scaled_dot_product_attention_forward(q[:1, :1, :64], k[:1, :1, :64], v[:1, :1, :64])
            if backward:
                out, lse = ops.scaled_dot_product_attention_forward(q, k, v, is_causal=causal)
        else:
            import torch
            from torch.nn.attention import SDPBackend, sdpa_kernel
            be = SDPBackend.FLASH_ATTENTION if impl == "torch_flash" else SDPBackend.MATH
            xs = [torch.from_numpy(a).requires_grad_(backward) for a in (q, k, v)]
            with sdpa_kernel(be):  # warm the dispatcher on a small problem
                torch.nn.functional.scaled_dot_product_attention(*(x[:1, :1, :64].detach() for x in xs))
            if backward:
                with sdpa_kernel(be):
                    y = torch.nn.functional.scaled_dot_product_attention(*xs, is_causal=causal)
        def status(key):  # KiB
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))
        with open("/proc/self/clear_refs", "w") as f:  # peak resident set := current
            f.write("5")
        base = status("VmRSS")
        if impl == "fastnn":
            if backward:
                r = ops.scaled_dot_product_attention_backward(g, q, k, v, out, lse, is_causal=causal)
            else:
                r = ops.scaled_dot_product_attention_forward(q, k, v, is_causal=causal)
        else:
            if backward:
                y.backward(torch.from_numpy(g))
            else:
                with torch.no_grad(), sdpa_kernel(be):
                    r = torch.nn.functional.scaled_dot_product_attention(*xs, is_causal=causal)
        print(status("VmHWM") - base)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=None)
    if p.returncode != 0:
        return f"failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}"
    return int(p.stdout.strip())


def memory_table(lengths=(512, 2048), impls=("fastnn", "torch_flash", "torch_math")):
    """Print the peak extra memory (MiB) of forward and backward calls, one fresh process each."""
    print(f"{'case':<28}" + "".join(f"{i:>22}" for i in impls))
    for L in lengths:
        for causal in (False, True):
            for backward in (False, True):
                row = f"L={L}{' causal' if causal else ''} {'bwd' if backward else 'fwd'}"
                cells = []
                for impl in impls:
                    if impl != "fastnn" and not torch:
                        cells.append("-")
                        continue
                    kib = _peak_rss_kib(impl, L, causal, backward)
                    cells.append(f"{kib / 1024:.1f} MiB" if isinstance(kib, int) else kib)
                print(f"{row:<28}" + "".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", action="store_true", help="print the peak extra memory table")
    ap.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    args = ap.parse_args()
    if args.memory:
        memory_table(tuple(args.lengths))
