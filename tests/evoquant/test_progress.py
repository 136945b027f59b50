"""The progress counters: genomes asked, evaluated and served from the archive."""

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
    assert task(progress).description == "generation -"


def test_a_resumed_search_counts_what_was_asked_before():
    progress = SearchProgress(10, 3, asked=42, enabled=False)
    assert progress.total == 42 + 30
    assert task(progress).completed == 42
    assert progress.evaluated == 0  # this session has evaluated nothing yet


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
    assert "3 evaluated, 0 from the archive" in task(progress).fields["detail"]


def test_a_finished_generation_adds_archive_hits_and_trims_the_total():
    progress = SearchProgress(10, 3, enabled=False)
    list(progress.wrap(ListEvaluator()).evaluate([[2]] * 6))
    progress.generation_done(0, 6, 2)  # 6 evaluated + 2 from the archive: 8 of 10 asked
    assert progress.cache_hits == 2 and progress.total == 30 - 2
    assert task(progress).completed == 8 and task(progress).total == 28
    assert task(progress).description == "generation 1"
    assert task(progress).fields["detail"] == "6 evaluated, 2 from the archive"

    list(progress.wrap(ListEvaluator()).evaluate([[4]] * 3))
    progress.generation_done(1, 3, 7)  # a full generation trims nothing
    assert (progress.evaluated, progress.cache_hits, progress.total) == (9, 9, 28)
    assert task(progress).completed == 18
    assert task(progress).description == "generation 2"


def test_a_disabled_bar_writes_nothing(capsys):
    with SearchProgress(2, 1, enabled=False) as progress:
        list(progress.wrap(ListEvaluator()).evaluate([[2], [4]]))
        progress.generation_done(0, 2, 0)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    assert task(progress).completed == task(progress).total == 2
