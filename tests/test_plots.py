"""Tests for s2s.plots (figures, headless) and s2s.descriptors.rdf (radial distribution around the excited O)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import random_orthogonal, random_permutation, rotate_permute  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402

from s2s import plots  # noqa: E402
from s2s.descriptors import rdf  # noqa: E402
from s2s.environment import SI, Environment, O, environment_from_structure  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def quartz_env(alpha_quartz) -> Environment:
    o = next(i for i, s in enumerate(alpha_quartz) if s.specie.symbol == "O")
    return environment_from_structure(alpha_quartz, o)


def _perturbed(env: Environment, sigma: float, seed: int) -> Environment:
    """A rotated, permuted, noisy copy (a stand-in for a generated environment)."""
    rng = np.random.default_rng(seed)
    c = env.coords + rng.normal(0.0, sigma, env.coords.shape)
    c[0] = 0.0
    noisy = Environment(env.species, c, env.shell)
    return rotate_permute(noisy, random_orthogonal(seed), random_permutation(env.n_atoms, rng))


def _small_env() -> Environment:
    # excited O, two Si at 1.6 Å, one O at 2.6 Å
    return Environment(
        species=[O, SI, SI, O],
        coords=[[0, 0, 0], [1.6, 0, 0], [0, -1.6, 0], [0, 0, 2.6]],
        shell=[0, 1, 1, 2],
    )


# ----------------------------------------------------------------------------- style / saving


def test_colors_si_blue_o_red():
    si = matplotlib.colors.to_rgb(plots.COLORS["Si"])
    o = matplotlib.colors.to_rgb(plots.COLORS["O"])
    assert si[2] > si[0] + 0.3 and o[0] > o[2] + 0.3
    assert plots.composition_color(0.25) != plots.composition_color(2.0)


def _list(d):
    return sorted(os.listdir(d))


def test_save_figure_png_svg_pdf_atomic(tmp_path):
    from PIL import Image

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1])
    out = plots.save_figure(fig, tmp_path / "sub" / "fig.png")  # suffix dropped, folder created
    assert [p.name for p in out] == ["fig.png", "fig.svg"]
    assert _list(tmp_path / "sub") == ["fig.png", "fig.svg"]  # no temp files left
    dpi = Image.open(out[0]).info["dpi"]
    assert dpi == pytest.approx((300, 300), abs=0.5)
    assert (tmp_path / "sub" / "fig.svg").read_text().lstrip().startswith("<?xml")
    # deterministic vector output (no timestamp)
    first = (tmp_path / "sub" / "fig.svg").read_bytes()
    plots.save_figure(fig, tmp_path / "sub" / "fig")
    assert (tmp_path / "sub" / "fig.svg").read_bytes() == first
    pdf = plots.save_figure(fig, tmp_path / "p", formats=("pdf",), close=True)
    assert pdf[0].read_bytes().startswith(b"%PDF")
    assert _list(tmp_path) == ["p.pdf", "sub"]


def test_svg_clip_ids_are_renumbered_in_order_of_definition(tmp_path):
    """matplotlib names a clip by hashing its rectangle at full float precision, so two runs whose
    layouts differ by 1e-13 (the SVG's rounded coordinates identical) got different ids: notebook
    05's subfigure plot changed bytes on every rerun.  save_figure renumbers them."""
    import re

    from s2s.plots.style import _stable_svg_ids

    def svg(a: str, b: str) -> bytes:
        return (
            f'<svg><defs><clipPath id="{a}"><rect/></clipPath><clipPath id="{b}"><rect/></clipPath></defs>'
            f'<g clip-path="url(#{b})"/><g clip-path="url(#{a})"/><g clip-path="url(#{b})"/></svg>'
        ).encode()

    one = _stable_svg_ids(svg("p0123456789", "pabcdefabcd"))
    two = _stable_svg_ids(svg("p9999999999", "p1111111111"))
    assert one == two  # only the ids differed
    assert re.findall(rb'<clipPath id="([^"]+)"', one) == [b"c0000000000", b"c0000000001"]
    assert re.findall(rb"url\(#([^)]+)\)", one) == [b"c0000000001", b"c0000000000", b"c0000000001"]
    assert _stable_svg_ids(b"<svg/>") == b"<svg/>"
    # and save_figure applies it: a real figure's clips are defined and referenced consistently
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1])
    out = plots.save_figure(fig, tmp_path / "f", formats=("svg",), close=True)[0].read_bytes()
    defined = re.findall(rb'<clipPath id="([^"]+)"', out)
    assert defined and defined[0] == b"c0000000000"
    assert set(re.findall(rb"url\(#([^)]+)\)", out)) <= set(defined)


def test_save_figure_failure_leaves_nothing(tmp_path, monkeypatch):
    fig, ax = plt.subplots(figsize=(2, 1.5))

    def broken(fh, **kwargs):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(fig, tmp_path / "x")
    assert _list(tmp_path) == []
    with pytest.raises(ValueError, match="format"):
        plots.save_figure(fig, tmp_path / "x", formats=("jpg",))
    assert _list(tmp_path) == []


# ----------------------------------------------------------------------------- 3-D structures


def test_environment_overlay_draws_bonds_atoms_and_asterisk(quartz_env):
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    gen = plots.align_for_plot(quartz_env, _perturbed(quartz_env, 0.02, 1), method="best")
    assert gen.meta["rmsd"] < 0.1  # a small perturbation aligns back
    fig = plots.plot_environment_overlay(quartz_env, gen)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "Å" in ax.get_xlabel() and "Å" in ax.get_ylabel() and "Å" in ax.get_zlabel()
    # equal aspect: a cube in Å
    spans = [np.ptp(lim) for lim in (ax.get_xlim(), ax.get_ylim(), ax.get_zlim())]
    assert spans == pytest.approx([spans[0]] * 3)
    # bonds: every pair closer than 2.0 Å, drawn as two half-bonds, in each structure
    fig.canvas.draw()  # renders headless (and projects the 3-D segments)
    lcs = [c for c in ax.collections if isinstance(c, Line3DCollection)]
    n_target = int(np.sum(pdist(quartz_env.coords) < plots.BOND_CUTOFF))
    n_gen = int(np.sum(pdist(gen.coords) < plots.BOND_CUTOFF))
    assert n_target > 0
    assert sorted(len(c.get_segments()) for c in lcs) == sorted([2 * n_target, 2 * n_gen])
    # the excited O is marked with an asterisk, legend names both species and both structures
    assert any(h.get_marker() == "*" for h in ax.get_legend().legend_handles)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"Si target", "O target", "Si generated", "O generated", "excited O"} <= set(labels)


def test_overlay_panel_and_grid(quartz_env):
    gen = plots.align_for_plot(quartz_env, _perturbed(quartz_env, 0.3, 2), method="best")
    fig = plots.plot_overlay_panel(quartz_env, gen, "B")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    title = fig.axes[0].get_title(loc="left")
    assert title.startswith("B") and f"{gen.meta['rmsd']:.3f} Å" in title
    assert "Å" in fig.axes[0].get_xlabel()
    texts = {t.get_text() for a in fig.axes[1:] for t in a.texts}
    assert texts == {"target", "generated"}
    grid = plots.plot_overlay_grid([("A", quartz_env, gen), ("C", quartz_env, gen)], rmsd=[0.1, 0.2])
    assert isinstance(grid, Figure) and len(grid.subfigs) == 2
    ens = plots.plot_environment_overlay(quartz_env, [gen, gen], title="ensemble")
    assert any("ensemble" in t.get_text() for t in ens.axes[0].get_legend().get_texts())
    with pytest.raises(TypeError, match="Environment"):
        plots.plot_environment_overlay(quartz_env, "not an environment")


# ----------------------------------------------------------------------------- RMSD, species


def test_rmsd_sorted_sorts_and_marks():
    rmsd = {"1st shell": np.array([0.3, 0.01, np.nan, 0.1]), "all": np.array([1.0, 0.2, 0.5, 2.0])}
    fig = plots.plot_rmsd_sorted(rmsd, marks={"C": 3, "A": ("1st shell", 1)})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "Å" in ax.get_ylabel()
    series = [c.get_offsets() for c in ax.collections[:2]]
    np.testing.assert_allclose(series[0], [[1, 0.01], [2, 0.1], [3, 0.3]])  # NaN dropped, sorted
    np.testing.assert_allclose(series[1][:, 1], [0.2, 0.5, 1.0, 2.0])
    marks = [c.get_offsets()[0] for c in ax.collections[2:]]
    np.testing.assert_allclose(marks, [[4, 2.0], [1, 0.01]])  # case 3 is the largest of "all"
    assert [t.get_text() for t in ax.texts] == ["C", "A"]
    assert "n = 3" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="no finite RMSD"):
        plots.plot_rmsd_sorted(rmsd, marks={"X": ("1st shell", 2)})


def test_oxygen_fraction_accuracy_in_title():
    t = np.array([2 / 3, 2 / 3, 0.5, 0.6])
    g = np.array([2 / 3, 2 / 3, 0.5, 0.5])
    fig = plots.plot_oxygen_fraction(t, g)
    ax = fig.axes[0]
    assert "0.750" in ax.get_title() and "3/4" in ax.get_title()
    assert "O fraction" in ax.get_xlabel() and "O fraction" in ax.get_ylabel()
    # one marker per distinct (target, generated) pair; counts drive the colour
    assert len(ax.collections[0].get_offsets()) == 3
    fig2 = plots.plot_oxygen_fraction(t, g, match=[True, False, False, False])
    assert "0.250" in fig2.axes[0].get_title()
    with pytest.raises(ValueError, match="equal"):
        plots.plot_oxygen_fraction(t, g[:2])


def test_species_accuracy_by_composition():
    acc = {"2.0": [True, True, True, False], "0.25": [True, False, False, False, False]}
    fig = plots.plot_species_accuracy_by_composition(
        acc,
        reference=0.949,
        o_frac_target={"2.0": [0.6, 0.7], "0.25": [0.2, 0.3]},
        o_frac_generated={"2.0": [0.6, 0.7], "0.25": [0.3, 0.4]},
    )
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.2, 0.75])  # sorted by x
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.25", "2"]
    assert "n=5" in ax.texts[0].get_text()
    assert len(fig.axes) == 2 and "O fraction" in fig.axes[1].get_ylabel()


def test_rmsd_by_composition_flat_and_nested():
    rng = np.random.default_rng(0)
    flat = {x: rng.lognormal(-1, 0.5, 20) for x in (0.25, 2.0, 1.0)}
    fig = plots.plot_rmsd_by_composition(flat)
    ax = fig.axes[0]
    assert "Å" in ax.get_ylabel() and ax.get_yscale() == "log"
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["0.25", "1", "2"]
    nested = {x: {"shell 1": v, "shell 2": 2 * v} for x, v in flat.items()}
    fig = plots.plot_rmsd_by_composition(nested)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:2] == ["shell 1", "shell 2"]


# ----------------------------------------------------------------------------- template matching, data


def test_similarity_gap_win_rate_and_colours():
    mse = np.array([1e-4, 2e-4, 3e-4, 4e-4])
    gap = np.array([0.01, -0.01, 0.0, 0.02])
    fig = plots.plot_similarity_gap(mse, gap)
    ax, axh = fig.axes
    assert "50.0%" in fig._suptitle.get_text() and "1 ties" in fig._suptitle.get_text()
    assert "eV" in ax.get_xlabel() and "model" in ax.get_ylabel()
    cols = {tuple(np.round(c.get_facecolor()[0][:3], 3)) for c in ax.collections}
    want = {tuple(np.round(matplotlib.colors.to_rgb(plots.COLORS[k]), 3)) for k in ("model", "template", "tie")}
    assert cols == want
    assert sum(p.get_width() for p in axh.patches) == 4  # every case in the histogram
    assert axh.get_xlabel() == "Number of cases"
    both = plt.figure(figsize=(10, 3.5), layout="constrained")
    left, right = both.subfigures(1, 2)
    assert plots.plot_similarity_gap(mse, gap, title="SiO$_2$", fig=left) is left
    plots.plot_similarity_gap(mse, -gap, title="SiO$_{0.25}$", fig=right)
    assert len(both.axes) == 4 and "25.0%" in right._suptitle.get_text()


def test_composition_histogram_counts():
    x = [2.0, 2.0, 2.0, 1.0, 2.5]
    ax = plots.plot_composition_histogram(x).axes[0]
    assert [p.get_height() for p in ax.patches] == [1, 3, 1]
    assert "SiO" in ax.get_xlabel() and "Total 5" in ax.get_title()
    ax = plots.plot_composition_histogram([1.0, 2.0], counts=[4, 7]).axes[0]
    assert [p.get_height() for p in ax.patches] == [4, 7]


def test_umap_categories_and_continuous():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(30, 2))
    labels = np.array(["train"] * 10 + ["0.25"] * 10 + ["2.0"] * 10)
    ax = plots.plot_umap(emb, labels).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0].startswith("train") and "SiO$_{0.25}$" in texts[1] and len(texts) == 3
    assert "UMAP 1" in ax.get_xlabel()
    fig = plots.plot_umap(emb, np.linspace(0, 2, 30))
    assert len(fig.axes) == 2  # scatter + colour bar
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.plot_umap(emb[:, :1], labels)


def test_spectra_units_and_shapes():
    from s2s.spectrum import GRID

    y = np.exp(-0.5 * ((GRID - 4) / 1.5) ** 2)
    fig = plots.plot_spectra(GRID, {"experiment": y, "calculated": 0.9 * y}, bands={"calculated": (0.8 * y, y)})
    ax = fig.axes[0]
    assert "eV" in ax.get_xlabel() and len(ax.get_lines()) == 3  # two spectra + onset marker
    with pytest.raises(ValueError, match="points"):
        plots.plot_spectra(GRID, {"bad": y[:10]})


# ----------------------------------------------------------------------------- RDF


def test_rdf_peaks_and_integral_known_environment():
    env = _small_env()
    r = rdf.R_GRID
    g = rdf.radial_distribution(env, r, sigma=0.05)
    assert rdf.integrate(r, g) == pytest.approx(3.0, abs=1e-6)  # three neighbours
    np.testing.assert_allclose(rdf.rdf_peaks(r, g), [1.6, 2.6], atol=0.011)
    by = rdf.radial_distribution_by_species(env, r, sigma=0.05)
    assert rdf.integrate(r, by["Si"]) == pytest.approx(2.0, abs=1e-6)
    assert rdf.integrate(r, by["O"]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(rdf.rdf_peaks(r, by["O"]), [2.6], atol=0.011)
    np.testing.assert_allclose(by["Si"] + by["O"], by["all"])
    # peak height of two coincident Si: 2 / (sqrt(2 pi) sigma)
    assert by["Si"].max() == pytest.approx(2 / (np.sqrt(2 * np.pi) * 0.05), rel=1e-3)


def test_rdf_alpha_quartz(quartz_env):
    r = rdf.R_GRID
    si = rdf.radial_distribution(quartz_env, r, species="Si")
    o = rdf.radial_distribution(quartz_env, r, species="O")
    n_si = int(np.sum(quartz_env.species[1:] == SI))
    n_o = int(np.sum(quartz_env.species[1:] == O))
    assert rdf.integrate(r, si) == pytest.approx(n_si, abs=1e-6)
    assert rdf.integrate(r, o) == pytest.approx(n_o, abs=1e-6)
    # Si-O bond (1.60-1.61 Å) and O-O edge of the SiO4 tetrahedron (~2.61-2.64 Å)
    assert rdf.rdf_peaks(r, si)[0] == pytest.approx(1.61, abs=0.02)
    assert rdf.rdf_peaks(r, o)[0] == pytest.approx(2.63, abs=0.03)


def test_ensemble_rdf_mean_and_spread():
    a = _small_env()
    b = Environment(a.species, a.coords * 1.1, a.shell)
    same = rdf.ensemble_rdf([a, a, a])
    np.testing.assert_allclose(same.mean, rdf.radial_distribution(a))
    assert np.allclose(same.std, 0.0) and same.n == 3
    ens = rdf.ensemble_rdf([a, b], quantiles=(0.0, 1.0))
    np.testing.assert_allclose(ens.mean, 0.5 * (rdf.radial_distribution(a) + rdf.radial_distribution(b)))
    assert np.all(ens.lo <= ens.mean + 1e-12) and np.all(ens.mean <= ens.hi + 1e-12)
    assert ens.std.max() > 0
    fig = plots.plot_rdf(ens.r, rdf.radial_distribution(a), ens)
    ax = fig.axes[0]
    assert "Å" in ax.get_xlabel() and "Å" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "target"
    fig = plots.plot_rdf(ens.r, None, ens.mean, ens.std)
    assert "s.d." in fig.axes[0].get_legend().get_texts()[-1].get_text()


def test_rdf_bad_input():
    env = _small_env()
    with pytest.raises(ValueError, match="sigma"):
        rdf.radial_distribution(env, sigma=0.0)
    with pytest.raises(ValueError, match="species"):
        rdf.radial_distribution(env, species="Li")
    with pytest.raises(ValueError, match="increasing"):
        rdf.radial_distribution(env, r=[0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="no environments"):
        rdf.ensemble_rdf([])


def test_loss_curve_from_csv(tmp_path):
    p = tmp_path / "loss.csv"
    p.write_text("step,epoch,loss,natoms_ce,seconds\n10,1,0.9,2.0,1.0\n20,2,0.5,1.5,2.0\n30,3,0.3,1.2,3.0\n")
    h = plots.read_loss_csv(p)
    assert h["loss"].tolist() == [0.9, 0.5, 0.3] and h["step"].tolist() == [10, 20, 30]
    fig = plots.plot_loss_curve(p, title="t")
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    assert fig.axes[0].lines[0].get_ydata().tolist() == [0.9, 0.5, 0.3]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv.*'step'"):
        plots.read_loss_csv(tmp_path / "bad.csv")


def test_validation_curve_one_line_per_recipe_sorted_by_cpu_time():
    def row(v, minutes, rmsd, weights="ema", guidance=0.0):
        return {
            "variant": v,
            "weights": weights,
            "guidance": guidance,
            "cpu_minutes": minutes,
            "rmsd_shell1": rmsd,
            "species_accuracy": 0.5,
            "validity": 0.6,
        }

    rows = [row("a", 40, 1.0), row("a", 20, 1.5), row("b", 40, 1.2), row("a", 40, 0.9, weights="raw")]
    rows.append(row("a", 40, 0.8, guidance=0.5))  # guided and raw rows are not drawn
    fig = plots.plot_validation_curve(rows)
    assert len(fig.axes) == 3
    lines = fig.axes[0].lines
    assert [ln.get_label() for ln in lines] == ["a", "b"]
    assert lines[0].get_xdata().tolist() == [20, 40] and lines[0].get_ydata().tolist() == [1.5, 1.0]
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_validation_curve(rows, weights="swa")


def test_svg_glyph_ids_do_not_depend_on_the_fonts_glyph_numbering(tmp_path):
    """An en dash was glyph DejaVuSans-af6 in one build of the font and -af5 in another (same outline): every
    SVG with one changed on a rerun elsewhere.  save_figure renumbers glyphs in order of definition."""
    import re

    from s2s.plots.style import _stable_svg_ids

    def svg(dash: str) -> bytes:
        return (
            f'<svg><defs><path id="DejaVuSans-31" d="M 1 1"/><path id="DejaVuSans-{dash}" d="M 2 2"/>'
            f'<path id="DejaVuSans-Oblique-78" d="M 3 3"/></defs><use xlink:href="#DejaVuSans-{dash}"/>'
            f'<use xlink:href="#DejaVuSans-31"/><use xlink:href="#DejaVuSans-Oblique-78"/>'
            f'<use xlink:href="#DejaVuSans-{dash}"/></svg>'
        ).encode()

    one, two = _stable_svg_ids(svg("af6")), _stable_svg_ids(svg("af5"))
    assert one == two
    assert re.findall(rb'<path id="([^"]+)"', one) == [b"DejaVuSans-g0", b"DejaVuSans-g1", b"DejaVuSans-Oblique-g2"]
    assert re.findall(rb'href="#([^"]+)"', one) == [
        b"DejaVuSans-g1",
        b"DejaVuSans-g0",
        b"DejaVuSans-Oblique-g2",
        b"DejaVuSans-g1",
    ]
    partial = svg("af6").replace(b"</svg>", b'<g id="DejaVuSans-af6x"/></svg>')
    assert b'<g id="DejaVuSans-af6x"/>' in _stable_svg_ids(partial)  # only whole ids are renamed
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.set_title("1st shell – RMSD (Å)")
    out = plots.save_figure(fig, tmp_path / "g", formats=("svg",), close=True)[0].read_bytes()
    defined = re.findall(rb'<path id="([^"]+)"', out)
    assert defined and all(re.search(rb"-g\d+$", d) for d in defined if b"-" in d)
    assert set(re.findall(rb'href="#([^"]+)"', out)) <= set(defined)
