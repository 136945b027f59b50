"""The progress counters: the run's evaluations, this process's, and archive hits."""

from evoquant.progress import SearchProgress


class ListEvaluator:
    """Answers each genome with its bit sum, and remembers how far it was read."""

    def __init__(self):
        self.yielded = 0

    def evaluate(self, genomes):
        for bits in genomes:
            self.yielded += 1
            yield bits, {"error": float(sum(bits))}


def task(progress: SearchProgress):
    return progress.bar.tasks[0]


def test_a_new_search_starts_at_zero_of_at_most_pop_times_generations():
    progress = SearchProgress(10, 5, enabled=False)
    assert (progress.evaluated, progress.cache_hits, progress.total) == (0, 0, 50)
    assert task(progress).completed == 0 and task(progress).total == 50
    assert task(progress).description == "generation 0"


def test_a_resumed_search_counts_the_evaluations_archived_before():
    progress = SearchProgress(10, 3, evaluated_before=42, enabled=False, generation=4)
    assert progress.total == 42 + 30
    assert task(progress).description == "generation 4"
    assert task(progress).completed == 42
    assert progress.evaluated == 0  # this process has evaluated nothing yet
    assert task(progress).speed is None  # nor measured any speed


def test_evaluations_count_as_their_results_arrive_and_pass_through_unchanged():
    progress = SearchProgress(4, 2, enabled=False)
    inner = ListEvaluator()
    results = progress.wrap(inner).evaluate([[2, 4], [8, 8], [4, 4]])
    assert progress.evaluated == 0  # nothing is evaluated before it is asked for
    first = next(results)
    assert first == ([2, 4], {"error": 6.0})
    assert progress.evaluated == inner.yielded == 1
    assert task(progress).completed == 1
    assert list(results) == [([8, 8], {"error": 16.0}), ([4, 4], {"error": 8.0})]
    assert progress.evaluated == 3 and task(progress).completed == 3
    assert task(progress).fields["detail"] == "3 new, 0 from the archive"


def test_archive_hits_are_counted_beside_the_evaluations_never_among_them():
    progress = SearchProgress(10, 3, enabled=False)
    list(progress.wrap(ListEvaluator()).evaluate([[2]] * 6))
    progress.generation_done(0, cached=2)  # 6 evaluated + 2 from the archive
    assert progress.cache_hits == 2 and task(progress).completed == 6
    assert progress.total == task(progress).total == 6 + 2 * 10
    assert task(progress).description == "generation 1"
    assert task(progress).fields["detail"] == "6 new, 2 from the archive"

    list(progress.wrap(ListEvaluator()).evaluate([[4]] * 3))
    progress.generation_done(1, cached=7)
    assert (progress.evaluated, progress.cache_hits, progress.total) == (9, 9, 19)
    assert task(progress).completed == 9
    assert task(progress).description == "generation 2"


def test_a_generation_served_from_the_archive_moves_neither_the_bar_nor_its_speed():
    """The ETA divides what is left by the speed of real evaluations: hits, which
    cost nothing, would make it look as if evaluations were free."""
    progress = SearchProgress(10, 2, evaluated_before=30, enabled=False)
    progress.generation_done(3, cached=10)
    assert task(progress).completed == 30 and task(progress).speed is None
    assert progress.total == 30 + 10


def test_expected_probes_raise_the_total_until_a_generation_trims_it():
    progress = SearchProgress(10, 2, enabled=False)
    progress.expect(7)
    assert progress.total == task(progress).total == 27
    list(progress.wrap(ListEvaluator()).evaluate([[2]] * (7 + 9)))
    progress.generation_done(0, cached=1)
    assert progress.total == task(progress).total == 16 + 10


def test_a_disabled_bar_writes_nothing(capsys):
    with SearchProgress(2, 1, enabled=False) as progress:
        list(progress.wrap(ListEvaluator()).evaluate([[2], [4]]))
        progress.generation_done(0, cached=0)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    assert task(progress).completed == task(progress).total == 2
