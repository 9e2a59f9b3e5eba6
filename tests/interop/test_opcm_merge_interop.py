"""`modelpress merge opcm|average|task-arithmetic|continual-ties` against a NumPy transcription of
fusion_bench's continual-merging code (fusion_bench/method/opcm: opcm.py, weight_average.py,
task_arithmetic.py, ties_merging.py), on small random state dicts of odd shapes.

Why a transcription and not fusion_bench itself: its OPCM is OPCMForCLIP, an algorithm class
that needs a CLIP model pool, a task pool, Lightning Fabric and torch modules (it walks
nn.Linear submodules); it cannot be driven on plain tensors. The transcription below follows
that code line by line in float64 NumPy, including its order of operations: full-matrix SVD
of the previous merged task vector, split rank = argmax(cumsum(s)/sum(s) > alpha), P = U^T tau
V with the diagonal and the leading r x r block zeroed, merged = base + (lambda_{t-1} prev +
tau') / 1, then lambda_t = ||merged - base|| / mean(norms) and the rescale.

Tolerance: |modelpress - reference| <= 1e-4 * (1 + max|reference|) (modelpress works in f32
with a thin SVD; the reference in f64 with full SVDs).
"""
import json

import pytest

np = pytest.importorskip("numpy")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

SHAPES = {  # name -> shape; 2-D linear weights are projected, the rest added as is
    "model.embed_tokens.weight": (17, 8),
    "model.layers.0.self_attn.q_proj.weight": (8, 8),
    "model.layers.0.mlp.up_proj.weight": (19, 8),
    "model.layers.0.mlp.up_proj.bias": (19,),
    "model.layers.0.mlp.down_proj.weight": (8, 19),
    "model.layers.0.post_attention_layernorm.weight": (8,),
    "lm_head.weight": (17, 8),
}
PROJECTED = {n for n, s in SHAPES.items() if len(s) == 2 and n != "model.embed_tokens.weight"}


def write(folder, tensors):
    folder.mkdir(parents=True)
    safetensors_numpy.save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(folder / "model.safetensors"),
                                metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))


def read(folder):
    return {k: v.astype(np.float64) for k, v in safetensors_numpy.load_file(str(folder / "model.safetensors")).items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("opcm")
    rng = np.random.default_rng(0)
    base = {n: rng.standard_normal(s) for n, s in SHAPES.items()}
    shared = {n: rng.standard_normal(s) for n, s in SHAPES.items()}
    tasks = []
    for _ in range(5):
        tasks.append({n: base[n] + 0.1 * (0.5 * shared[n] + rng.standard_normal(SHAPES[n])) for n in SHAPES})
    write(tmp / "base", base)
    for i, t in enumerate(tasks):
        write(tmp / f"task{i}", t)
    # What the files hold (f32), as the reference's inputs.
    return tmp, read(tmp / "base"), [read(tmp / f"task{i}") for i in range(len(tasks))]


def norm(sd):
    return np.sqrt(sum(float(np.sum(v * v)) for v in sd.values()))


def opcm_reference(base, tasks, alpha):
    merged = {n: v.copy() for n, v in tasks[0].items()}
    norms = [norm({n: tasks[0][n] - base[n] for n in base})]
    previous_lambda = 1.0
    for task in tasks[1:]:
        norms.append(norm({n: task[n] - base[n] for n in base}))
        avg = np.mean(norms)
        lambda_t = 1.0  # fusion_bench: a temporary value, fixed up after the sweep
        new = {}
        for n in base:
            prev = merged[n] - base[n]
            tau = task[n] - base[n]
            if n in PROJECTED:
                u, s, vh = np.linalg.svd(prev, full_matrices=True)
                v = vh.T
                split = int(np.argmax(np.cumsum(s) / s.sum() > alpha))
                p = u.T @ tau @ v
                np.fill_diagonal(p, 0)
                p[:split, :split] = 0
                tau = u @ p @ v.T
            new[n] = base[n] + (previous_lambda * prev + tau) / lambda_t
        tv_norm = norm({n: new[n] - base[n] for n in base})
        lambda_t *= tv_norm / avg
        merged = {n: base[n] + (new[n] - base[n]) * (avg / tv_norm) for n in base}
        previous_lambda = lambda_t
    return merged, previous_lambda


def topk_mask(m, k):
    d = m.size
    kth = d - int(d * k)
    if kth <= 0 or int(d * k) >= d:
        return np.ones_like(m, dtype=bool)
    threshold = np.sort(np.abs(m))[kth - 1]
    return np.abs(m) >= threshold


def ties_pair(a, b, k):
    a, b = a * topk_mask(a, k), b * topk_mask(b, k)
    sign = np.sign(a + b)
    sign[sign == 0] = np.sign(sign.sum())
    keep_a = np.where(sign > 0, a > 0, a < 0)
    keep_b = np.where(sign > 0, b > 0, b < 0)
    sel = a * keep_a + b * keep_b
    count = (a * keep_a != 0).astype(int) + (b * keep_b != 0).astype(int)
    return sel / np.maximum(count, 1)


def baseline_reference(method, base, tasks):
    if method == "average":
        return {n: np.mean([t[n] for t in tasks], axis=0) for n in base}
    if method == "task-arithmetic":
        return {n: base[n] + 0.3 * sum(t[n] - base[n] for t in tasks) for n in base}
    merged = {n: v.copy() for n, v in base.items()}  # continual-ties, per tensor (docs/MERGING.md)
    for i, t in enumerate(tasks):
        for n in base:
            tau = t[n] - base[n]
            tv = tau if i == 0 else ties_pair((merged[n] - base[n]).ravel(), tau.ravel(), 0.2).reshape(tau.shape)
            merged[n] = merged[n] + 0.5 * tv
    return merged


def assert_close(got, want):
    for n in want:
        tol = 1e-4 * (1 + np.max(np.abs(want[n])))
        assert np.max(np.abs(got[n] - want[n])) <= tol, n


@pytest.mark.parametrize("alpha", [0.5, 0.2, 0.8])
def test_opcm_matches_the_transcription(models, modelpress, alpha):
    tmp, base, tasks = models
    out = tmp / f"opcm-{alpha}"
    modelpress("merge", "opcm", "--base", tmp / "base", "--add", *[tmp / f"task{i}" for i in range(5)], "-o", out,
               "--alpha", alpha)
    want, lam = opcm_reference(base, tasks, alpha)
    assert_close(read(out), want)
    state = json.loads((out / "modelpress_merge_state.json").read_text())
    assert abs(state["lambda"] - lam) <= 1e-5 * lam
    assert state["count"] == 5


def test_opcm_continued_through_the_state_matches(models, modelpress):
    tmp, base, tasks = models
    modelpress("merge", "opcm", "--base", tmp / "base", "--add", tmp / "task0", tmp / "task1", "-o", tmp / "step2")
    modelpress("merge", "opcm", "--base", tmp / "base", "--add", tmp / "task2", tmp / "task3", tmp / "task4",
               "--state", tmp / "step2", "-o", tmp / "step5")
    want, _ = opcm_reference(base, tasks, 0.5)
    assert_close(read(tmp / "step5"), want)


@pytest.mark.parametrize("method", ["average", "task-arithmetic", "continual-ties"])
def test_baselines_match_the_transcription(models, modelpress, method):
    tmp, base, tasks = models
    out = tmp / method
    modelpress("merge", method, "--base", tmp / "base", "--add", *[tmp / f"task{i}" for i in range(5)], "-o", out)
    assert_close(read(out), baseline_reference(method, base, tasks))
