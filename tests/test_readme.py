"""The README's Python example runs as written (real LocalCluster, real store in a temporary folder)."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert blocks, "README has no ```python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    w_tilde, dirty_image = namespace["w_tilde"], namespace["dirty_image"]
    assert w_tilde.shape == (6400, 6400) and dirty_image.shape == (6400,)
    assert (tmp_path / "sma_w_tilde.zarr" / "zarr.json").is_file()
    # the matrix read back is symmetric and its diagonal is sum_k (wr_k) (cos^2 + sin^2 with wr == wi here)
    corner = np.asarray(w_tilde[:50, 6350:])
    assert np.array_equal(corner, np.asarray(w_tilde[6350:, :50]).T)
    dataset = namespace["dataset"]
    assert np.allclose(np.diag(np.asarray(w_tilde[:20, :20])), dataset.weights_real.sum(), rtol=1e-12)
    fitter = namespace["fitter"]
    assert fitter is not None
