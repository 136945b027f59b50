"""The Ray back-end on a cluster of several nodes on this machine, one of which goes away.

``ray.cluster_utils.Cluster`` starts a head (no CPUs: it schedules nothing) and two
nodes of one CPU each, so each of the two workers runs on a node of its own. Once a
known number of results has come back, in generation 1, one node is removed whole
(raylet, object store and the worker on it). Every genome must still be scored
exactly once (counted on the results the back-end returns), and the run must end as
the undisturbed local run of the same settings does.
"""

import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from evoquant.cli import main
from evoquant.evaluate.ray_backend import RayEvaluator

# a three-node Ray cluster and two digits searches (about a minute)
pytestmark = pytest.mark.slow

CONFIG = {
    "problem": {
        "name": "digits",
        "args": {"batch_size": 64, "calibration_batches": 2, "fitness_batches": 2},
    },
    "quant": {"alpha": {"start": 0.9, "stop": 1.1, "step": 0.1}},
    "search": {"pop_size": 10, "generations": 3},
}
REMOVE_AFTER = 12
"""Results back when the node goes: generation 0 (10 genomes) and two of generation 1."""
FAST_FAILURE_DETECTION = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}
"""A removed node is known dead within seconds, not Ray's default half a minute."""


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "_system_config": FAST_FAILURE_DETECTION},
    )
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def search(root: Path, name: str, *flags: str) -> int:
    (root / f"{name}.yaml").write_text(yaml.safe_dump(CONFIG))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return main(["search", f"{name}.yaml", "--name", name, "-q", *flags])


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("undisturbed")
    assert search(root, "local", "--backend", "local") == 0
    return root / "runs" / "local"


def test_a_node_removed_mid_generation_loses_no_genome_and_scores_none_twice(
    cluster, undisturbed, tmp_path, monkeypatch, caplog, outcome
):
    cluster, nodes = cluster
    run_dir = tmp_path / "runs" / "cluster"
    run_dir.mkdir(parents=True)
    for path in undisturbed.glob("quant_table.*"):
        shutil.copy(path, run_dir)
    returned: Counter[tuple[int, ...]] = Counter()
    still_to_come: list[int] = []  # results of the generation left when the node went
    evaluate = RayEvaluator.evaluate

    def evaluate_and_remove_a_node(self, genomes):
        distinct = len({tuple(g) for g in genomes})
        for seen, (bits, metrics) in enumerate(evaluate(self, genomes), 1):
            returned[tuple(bits)] += 1
            if sum(returned.values()) == REMOVE_AFTER:
                cluster.remove_node(nodes[0])
                still_to_come.append(distinct - seen)
            yield bits, metrics

    monkeypatch.setattr(RayEvaluator, "evaluate", evaluate_and_remove_a_node)
    with caplog.at_level(logging.WARNING, logger="evoquant"):
        assert search(tmp_path, "cluster", "--workers", "2") == 0

    assert still_to_come and still_to_come[0] > 0, "no generation outlived the node"
    assert "lost: " in caplog.text  # the worker on the removed node
    rows, *_ = outcome(run_dir)
    assert set(returned) == set(rows) and set(returned.values()) == {1}
    assert outcome(run_dir) == outcome(undisturbed)
