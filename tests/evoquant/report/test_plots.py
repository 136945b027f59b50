import matplotlib.image

from evoquant.report.front import pareto_front
from evoquant.report.plots import _use_log_y, plot_generation, plot_hypervolume

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, shape):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(path).shape[:2] == shape
    assert [f.name for f in path.parent.iterdir()] == [path.name]  # no temporary left


def test_plot_generation(tmp_path, uniform_points, labelled_uniform, mixed_points):
    population = [*uniform_points, *mixed_points]
    front = pareto_front(population, ("relative_cost", "error"))
    path = plot_generation(
        tmp_path / "gen_003.png", 3, population, front, labelled_uniform
    )
    assert path == tmp_path / "gen_003.png"
    assert_png(path, (500, 700))


def test_plot_generation_without_uniforms_or_front(tmp_path, mixed_points):
    assert_png(plot_generation(tmp_path / "g.png", 0, mixed_points, [], {}), (500, 700))


def test_log_scale_only_beyond_two_decades():
    assert _use_log_y([0.8, 0.0001])
    assert not _use_log_y([0.8, 0.01])
    assert not _use_log_y([0.8, 0.0])


def test_plot_hypervolume(tmp_path):
    path = plot_hypervolume(tmp_path / "hv.png", {0: 0.1, 1: 0.15, 2: 0.18})
    assert_png(path, (400, 600))
