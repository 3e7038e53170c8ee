"""The upper-triangle block plan."""

import numpy as np
import pytest

from wtilde_dask.tiling import BlockPlan


@pytest.mark.parametrize("M,B", [(1, 1), (10, 3), (64, 64), (65, 64), (100, 1000), (1000, 128)])
def test_blocks_cover_upper_triangle_once(M, B):
    plan = BlockPlan(M, B)
    nb = plan.n_blocks_side
    assert nb == -(-M // B)
    blocks = plan.blocks()
    assert len(blocks) == plan.n_blocks == nb * (nb + 1) // 2
    assert len(set(blocks)) == len(blocks)
    assert all(bi <= bj for bi, bj in blocks)
    covered = np.zeros((M, M), int)
    for bi, bj in blocks:
        covered[plan.pixel_range(bi), plan.pixel_range(bj)] += 1
        assert plan.block_shape(bi, bj) == covered[plan.pixel_range(bi), plan.pixel_range(bj)].shape
    # every upper-triangle entry exactly once; lower off-diagonal blocks never
    assert covered[np.triu_indices(M)].min() == 1 and covered.max() == 1
    assert sum(plan.block_chunks()) == M


def test_ragged_edge_and_single_block():
    plan = BlockPlan(130, 64)
    assert plan.pixel_range(2) == slice(128, 130)
    assert plan.block_shape(0, 2) == (64, 2)
    single = BlockPlan(50, 1024)
    assert single.blocks() == [(0, 0)] and single.pixel_range(0) == slice(0, 50)


def test_row_major_order_keeps_row_blocks_together():
    blocks = BlockPlan(500, 100).blocks()
    rows = [bi for bi, _ in blocks]
    assert rows == sorted(rows)
    assert blocks[:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]


def test_bad_sizes():
    with pytest.raises(ValueError, match="block_size"):
        BlockPlan(10, 0)
    with pytest.raises(ValueError, match="n_pixels"):
        BlockPlan(0, 10)
    with pytest.raises(IndexError):
        BlockPlan(10, 5).pixel_range(2)
