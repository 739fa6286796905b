"""Paper-ready figures read back as objects: titles from the protocol, one colour per group in every figure of a run,
curves that stay apart at AUC 1.0, thinned ROCs, and a PDF (TrueType fonts) beside every PNG."""

import io
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from csv_rows import write_rows
from matplotlib.colors import to_rgb
from PIL import Image
from sklearn.metrics import roc_auc_score

import test as test_script
from data.protocols import report_groups
from data.schema import load_table
from engine import figures
from engine.training.records import RunRecorder, run_title
from tools import explain

GENERATORS = {"gA": "EFS", "gB": "EFS", "gC": "AM", "gD": "FS", "gE": "FS"}


def _table(tmp_path, perfect=("gA", "gB", "gC", "gD")):
    """Reals and five generators; those in ``perfect`` score above every real (AUC 1.0)."""
    rng = np.random.default_rng(0)
    rows = [
        {"path": f"r{i}.png", "label": 0, "forgery_type": "real", "generator": "real", "score": rng.uniform(0, 0.4)}
        for i in range(30)
    ]
    for generator, forgery in GENERATORS.items():
        low = 0.5 if generator in perfect else 0.0
        rows += [
            {"path": f"{generator}{i}.png", "label": 1, "forgery_type": forgery, "generator": generator}
            | {"score": rng.uniform(low, 1.0)}
            for i in range(12)
        ]
    return load_table(write_rows(tmp_path / "splits.csv", rows))


def _groups_and_results(table):
    groups = report_groups(table, np.arange(len(table)), ["forgery_type", "generator"])
    scores = np.array([float(s) for s in table.column("score")])
    results = {g: {"clean": {"auc": roc_auc_score(table.labels[r], scores[r])}} for g, r in groups.items()}
    return groups, scores, results


def _roc(tmp_path, table, **options):
    groups, scores, results = _groups_and_results(table)
    captured = []
    title = figures.describe_run("cael", "intra", None, "test rows of splits.csv")
    written = figures.plot_roc(
        tmp_path / "roc.png", table, groups, scores, results, title, figure_hook=captured.append, **options
    )
    return captured[0], written


def _lines_by_label(axis):
    return {line.get_label().split(" (")[0]: line for line in axis.get_lines() if not line.get_label().startswith("_")}


def test_palette_is_deterministic_and_keeps_real_fake_and_overall():
    palette = figures.group_palette(["gB", "real", "gA", "gC"])
    assert palette == figures.group_palette(["gC", "gA", "gB", "real", "gA"])  # order and repeats do not matter
    assert palette["real"] == figures.REAL_COLOUR and palette["fake"] == figures.FAKE_COLOUR
    assert palette["overall"] == "#000000"
    members = [palette[name] for name in ("gA", "gB", "gC")]
    assert len(set(members)) == 3 and not set(members) & {figures.REAL_COLOUR, figures.FAKE_COLOUR, "#000000"}
    # a name seen in a larger CSV keeps the colour it gets from its sorted position among all of the level's names
    assert figures.group_palette(["gA", "gB", "gC", "gD"])["gA"] == palette["gA"]


def test_roc_has_protocol_title_one_panel_per_level_and_curves_apart_at_auc_one(tmp_path):
    table = _table(tmp_path)
    figure, written = _roc(tmp_path, table)
    assert figure._suptitle.get_text() == "cael, protocol intra: test rows of splits.csv"
    axes = [a for a in figure.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["by forgery type", "by generator"]
    by_generator = axes[1]
    legend = [t.get_text() for t in by_generator.get_legend().get_texts()]
    assert legend[0].startswith("overall (AUC") and "gA (AUC 100.00)" in legend and len(legend) == 6
    lines = _lines_by_label(by_generator)
    assert lines["overall"].get_color() == "#000000" and lines["overall"].get_linestyle() == "-"
    palette = figures.table_palettes(table)["generator"]
    assert {name: lines[name].get_color() for name in GENERATORS} == {name: palette[name] for name in GENERATORS}
    # the four generators at AUC 1.0 draw the same path: each differs from every other in colour, dash and marker
    perfect = [lines[name] for name in ("gA", "gB", "gC", "gD")]
    for one, other in itertools.combinations(perfect, 2):
        assert one.get_color() != other.get_color()
        assert one.get_marker() != other.get_marker()
        assert one._unscaled_dash_pattern != other._unscaled_dash_pattern
        marks = [{tuple(xy) for xy in line.get_xydata()[line.get_markevery()]} for line in (one, other)]
        assert len(marks[0]) == 8 and not marks[0] & marks[1]  # markers at different places along the shared path
    assert [p.name for p in written] == ["roc.png", "roc.pdf"]
    pdf = (tmp_path / "roc.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType (Type 42) fonts
    width, _ = Image.open(tmp_path / "roc.png").size
    assert width == round(figure.get_figwidth() * figures.FIGURE_DPI)


def test_one_panel_when_the_csv_has_no_level(tmp_path):
    rows = [{"path": f"{i}.png", "label": i % 2, "score": (i % 7) / 7} for i in range(20)]
    table = load_table(write_rows(tmp_path / "p.csv", rows))
    groups = {"overall": np.arange(20)}
    scores = np.array([float(s) for s in table.column("score")])
    results = {"overall": {"clean": {"auc": roc_auc_score(table.labels, scores)}}}
    captured = []
    figures.plot_roc(tmp_path / "roc.png", table, groups, scores, results, "t", figure_hook=captured.append)
    (axis,) = [a for a in captured[0].axes if a.get_visible()]
    assert axis.get_title() == "overall" and list(_lines_by_label(axis)) == ["overall"]


def test_a_panel_of_many_generators_names_its_lowest_and_highest_aucs_and_greys_the_rest(tmp_path):
    """20 generators, generator k further from the reals as k grows: the panel names the 8 lowest and the 8 highest
    AUCs, draws the 4 others thin and grey under one legend entry, and says so in its title."""
    rng = np.random.default_rng(2)
    rows = [{"path": f"r{i}.png", "label": 0, "generator": "real", "score": rng.normal()} for i in range(60)]
    rows += [
        {"path": f"g{k:02d}-{i}.png", "label": 1, "generator": f"g{k:02d}", "score": rng.normal(0.1 * k)}
        for k in range(20)
        for i in range(30)
    ]
    table = load_table(write_rows(tmp_path / "splits.csv", rows))
    groups, scores, results = _groups_and_results(table)
    captured = []
    figures.plot_roc(tmp_path / "roc.png", table, groups, scores, results, "t", figure_hook=captured.append)
    (axis,) = [a for a in captured[0].axes if a.get_visible()]
    assert axis.get_title() == "by generator: the 8 lowest and 8 highest AUCs of 20"
    ranked = sorted((results[f"generator=g{k:02d}"]["clean"]["auc"], f"g{k:02d}") for k in range(20))
    named = sorted(name for _, name in ranked[:8] + ranked[-8:])
    legend = [t.get_text().split(" (")[0] for t in axis.get_legend().get_texts()]
    assert legend == ["overall", *named, "4 others"]
    grey = [line for line in axis.get_lines() if line.get_color() == figures.OTHERS_COLOUR]
    assert len(grey) == 4 and all(line.get_zorder() < 2 for line in grey)  # every generator is drawn
    low = min(auc for auc, name in ranked if name not in named)
    assert f"(AUC {100 * low:.2f}-" in axis.get_legend().get_texts()[-1].get_text()
    # at the cap every member is named
    assert figures.named_members([(f"generator={k}", str(k)) for k in range(16)], {}) == (
        [(f"generator={k}", str(k)) for k in range(16)],
        [],
    )


@pytest.mark.parametrize("log_fpr", [False, True])
def test_roc_of_many_rows_is_thinned_to_the_cap_without_changing_the_curve(log_fpr):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200_000)
    scores = rng.normal(labels * 0.7, 1.0)
    fpr, tpr = figures.roc_vertices(labels, scores, log_fpr=log_fpr)
    assert len(fpr) <= figures.ROC_MAX_POINTS
    assert (tpr[0], fpr[-1], tpr[-1]) == (0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    if not log_fpr:
        assert abs(np.trapezoid(tpr, fpr) - roc_auc_score(labels, scores)) < 1e-3
    small_fpr, _ = figures.roc_vertices(labels[:50], scores[:50], log_fpr=log_fpr)
    assert len(small_fpr) > 2  # few vertices: every one kept


def test_tsne_real_and_generators_keep_their_roc_colours_in_every_panel(tmp_path):
    table = _table(tmp_path)
    roc, _ = _roc(tmp_path, table)
    roc_colours = {name: line.get_color() for name, line in _lines_by_label(roc.axes[1]).items()}
    rows = np.arange(len(table))
    labels = ["fake" if table.labels[i] else "real" for i in rows]
    colourings = [("real / fake", labels)] + [(c, table.values(c, rows)) for c in ("generator", "forgery_type")]
    embedding = np.random.default_rng(0).normal(size=(len(table), 2))
    captured = []
    explain.plot_tsne(
        tmp_path / "tsne_fine.png",
        embedding,
        colourings,
        {"gE"},
        "t-SNE",
        figures.table_palettes(table),
        figure_hook=captured.append,
    )
    panels = [a for a in captured[0].axes if a.get_visible()]
    assert [a.get_title() for a in panels] == ["by real / fake", "by generator", "by forgery type"]
    colour = {
        (panel.get_title(), c.get_label().split(" (")[0]): to_rgb(c.get_facecolor()[0])
        for panel in panels
        for c in panel.collections
    }
    for panel in panels:
        assert colour[(panel.get_title(), "real")] == to_rgb(figures.REAL_COLOUR)
    assert colour[("by real / fake", "fake")] == to_rgb(figures.FAKE_COLOUR)
    for name in GENERATORS:
        assert colour[("by generator", name)] == to_rgb(roc_colours[name])
    unseen = [c for c in panels[1].collections if c.get_label() == "gE (unseen)"]
    assert len(unseen) == 1
    assert (tmp_path / "tsne_fine.pdf").read_bytes().startswith(b"%PDF")
    config = {"model": {"name": "cael"}, "data": {"protocol": "cross-generator", "fold": "gA"}}
    assert explain.tsne_title(config, "fused", "20 test images of demo.csv") == (
        "t-SNE of the fused feature (3 CLS tokens), cael, protocol cross-generator, trained on gA: "
        "20 test images of demo.csv"
    )


def test_confusion_names_in_their_group_colours(tmp_path):
    palette = figures.group_palette(["EFS", "AM", "FS", "real"])
    captured = []
    figures.plot_confusion(
        tmp_path / "confusion_level2.png",
        np.array([[5, 1, 0], [0, 6, 0], [2, 0, 4]]),
        ["AM", "EFS", "FS"],
        "cael, protocol intra\nforgery_type attribution (acc 83.33%)",
        palette=palette,
        figure_hook=captured.append,
    )
    axis = captured[0].axes[0]
    assert {t.get_text(): t.get_color() for t in axis.get_yticklabels()} == {n: palette[n] for n in ("AM", "EFS", "FS")}
    assert captured[0]._suptitle.get_text().startswith("cael, protocol intra")
    assert (tmp_path / "confusion_level2.pdf").read_bytes().startswith(b"%PDF")


def test_curves_are_titled_from_the_run_config_not_its_folder(tmp_path):
    run_dir = tmp_path / "cael_demo-20261202-041500"
    run_dir.mkdir()
    config = {"model": {"name": "cael"}, "data": {"protocol": "cross-generator", "fold": "gA", "csv": "/d/splits.csv"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    history = [
        {"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1), "val_auc": 0.5 + 0.1 * e}
        | {"best_auc": 0.7}
        for e in range(3)
    ]
    assert run_title(run_dir) == "training of cael, protocol cross-generator, trained on gA: splits.csv"
    figure = figures.curves_figure(history, run_title(run_dir), selected_epoch=2)
    loss, metric = figure.axes
    loss_lines = _lines_by_label(loss)
    assert loss_lines["train loss"].get_color() != loss_lines["validation loss"].get_color()
    assert "best.pt" in [t.get_text() for t in metric.get_legend().get_texts()][-1]
    RunRecorder(run_dir, tensorboard=False).plot(history)
    assert (run_dir / "curves.pdf").read_bytes().startswith(b"%PDF")
    assert Image.open(io.BytesIO((run_dir / "curves.png").read_bytes())).size[0] >= 1000


def test_evaluation_figures_carry_the_protocol_not_the_folder(tmp_path, monkeypatch):
    rows = [
        {"path": f"{i}.png", "label": i % 2, "split": "test", "generator": "real" if i % 2 == 0 else f"g{i % 3}"}
        | {"score": f"{(i % 5) / 5:.2f}"}
        for i in range(40)
    ]
    captured = []
    saver = figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda f, p, **k: (captured.append(f), saver(f, p, **k))[1])
    out = tmp_path / "cael_demo-20261202-041500" / "eval-intra"
    predictions = write_rows(tmp_path / "p.csv", rows)
    test_script.main(["--predictions", str(predictions), "--protocol", "intra", "--out", str(out), "--bootstrap", "0"])
    roc, reliability, risk_coverage = captured  # and the calibration figures, titled the same way
    assert roc._suptitle.get_text() == "protocol intra: test rows of p.csv"
    assert reliability._suptitle.get_text().startswith("protocol intra: test rows of p.csv")
    assert "risk-coverage" in risk_coverage._suptitle.get_text()
    for name in ("roc", "reliability", "risk_coverage"):
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.slow
def test_demo_figures_script_renders_the_docs_figures_from_a_run(tmp_path):
    """benchmarks/demo_figures.py on a quick fine-grained run: every figure as PNG and PDF, and their captions."""
    from runs import quick_args

    import train
    from data.make_demo import make_demo

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import demo_figures

    csv_path = make_demo(tmp_path / "data", identities=8, fakes_per_generator=12)
    settings = ["--set", "model.fine-grained-heads=true", "--set", "model.level3-num-classes=6"]
    quick = quick_args(train__epochs=1, train__max_steps_per_epoch=3, data__augment="[{name: hflip, p: 0.5}]")
    train.main(
        ["--csv", str(csv_path), "--out", str(tmp_path / "run"), *quick, *settings, "--set", "loss.name=multitask"]
    )
    written = demo_figures.main([str(tmp_path / "run"), "--out", str(tmp_path / "docs")])
    names = [p.stem for p in written]
    assert names == ["curves", "roc", "confusion_level2", "confusion_level3", "tsne_fused"]
    for name in names:
        assert (tmp_path / "docs" / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name
    captions = (tmp_path / "docs" / "figures.md").read_text()
    assert captions.count("](roc.pdf)") == 1 and "one panel per level" in captions
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == sorted(
        [f"{n}{s}" for n in names for s in (".png", ".pdf")] + ["figures.md"]
    )


def test_rows_without_a_value_get_a_colour_of_their_own(tmp_path):
    rows = [{"path": f"{i}.png", "label": 1, "generator": ["gA", "gB", ""][i % 3]} for i in range(6)]
    palette = figures.table_palettes(load_table(write_rows(tmp_path / "p.csv", rows)))["generator"]
    assert len({palette[name] for name in ("gA", "gB", "(missing)")}) == 3


def test_the_grad_cam_grid_heads_columns_by_what_they_show_names_rows_whole_and_wastes_no_band(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    names = ["DemoFace-A-gan-upsample-0010", "DemoFace-B-attr-mouth-0002_3.png", "x.png"]
    explanations = [
        explain.Explanation(
            name,
            rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
            rng.uniform(size=(64, 64)),
            score,
            cams={stream: rng.uniform(size=(64, 64)) for stream in explain.STREAMS},
            attention={entry[0]: rng.uniform(size=(2, 2)) for entry in explain.ATTENTIONS},
            self_weight={entry[0]: 0.3 for entry in explain.ATTENTIONS},
        )
        for name, score in zip(names, (0.754, 0.123, 0.5))
    ]
    captured, save = [], figures.save_figure
    monkeypatch.setattr(
        explain.figures, "save_figure", lambda figure, path: captured.append(figure) or save(figure, path)
    )
    explain.save_grid(tmp_path / "grid.png", explanations, method="gradcam", target_name="fake")
    (figure,) = captured
    grid = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    headers = [axis.get_title() for axis in grid if axis.get_title()]
    assert headers[:2] == ["input", "Sobel edge map"] and len(headers) == 9  # no face's score in a column header
    labels = [axis.get_ylabel() for axis in grid if axis.get_ylabel()]
    assert [label.rsplit("\n", 1)[0].replace("\n", "") for label in labels] == names  # whole names, wrapped
    assert [label.rsplit("\n", 1)[1] for label in labels] == ["P(fake) 0.754", "P(fake) 0.123", "P(fake) 0.500"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)  # as save_figure drew it (pyplot detached its canvas on closing)
    canvas.draw()
    renderer = canvas.get_renderer()
    label_boxes = [axis.yaxis.label.get_window_extent(renderer) for axis in grid if axis.get_ylabel()]
    assert min(box.x0 for box in label_boxes) >= 0  # nothing cut at the left edge
    title_bottom = figure._suptitle.get_window_extent(renderer).y0
    headers_top = max(axis.title.get_window_extent(renderer).y1 for axis in grid if axis.get_title())
    assert 0 <= title_bottom - headers_top < 0.15 * figure.dpi  # no blank band under the title


def test_a_fold_roc_names_its_own_generator_and_draws_the_unseen_ones_alone_under_a_whole_title(tmp_path):
    """A cross-generator run trained on gA: its overall curve pools gA's test fakes (in-domain) with the unseen
    generators'; the figure says so, draws the unseen ones alone, and its long title is wrapped, not cut."""
    table = _table(tmp_path, perfect=("gA",))
    groups = report_groups(table, np.arange(len(table)), ["generator"])
    scores = np.array([float(s) for s in table.column("score")])
    results = {g: {"clean": {"auc": roc_auc_score(table.labels[r], scores[r])}} for g, r in groups.items()}
    title = figures.describe_run("cael_demo", "cross-generator", "gA", "test rows of a-long-name-of-a-split-file.csv")
    captured = []
    figures.plot_roc(
        tmp_path / "roc.png", table, groups, scores, results, title, fold="gA", figure_hook=captured.append
    )
    (axis,) = [a for a in captured[0].axes if a.get_visible()]
    legend = [t.get_text() for t in axis.get_legend().get_texts()]
    unseen = np.flatnonzero(np.asarray(table.column("generator")) != "gA")
    unseen_auc = roc_auc_score(table.labels[unseen], scores[unseen])
    assert legend[:2] == [
        f"overall: gA + unseen (AUC {100 * results['overall']['clean']['auc']:.2f})",
        f"unseen generators only (AUC {100 * unseen_auc:.2f})",
    ]
    assert "gA, trained on (AUC 100.00)" in legend and "gB (AUC" in legend[3]
    lines = _lines_by_label(axis)
    assert (
        lines["unseen generators only"].get_color() == "#000000"
        and lines["unseen generators only"].get_linestyle() == "--"
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(captured[0])
    canvas.draw()
    box = captured[0]._suptitle.get_window_extent(canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= canvas.get_width_height()[0]  # wrapped onto lines, none cut at the sides
    assert captured[0]._suptitle.get_text().replace("\n", " ") == title


def test_curves_are_drawn_at_most_once_a_minute_and_always_when_the_run_ends(tmp_path, monkeypatch):
    # the drawing costs 1-3 s: a two-epoch demo paid it twice on its critical path; a long run still sees each epoch
    from engine.training import records

    history = [
        {"epoch": e, "step": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "val_auc": 0.5 + 0.1 * e} for e in (1, 2)
    ]
    drawn = []
    monkeypatch.setattr(records, "save_figure", lambda figure, path: drawn.append(path) or [path])
    recorder = RunRecorder(tmp_path, tensorboard=False)
    for record in history:
        recorder.record(record, record["step"])
    assert drawn == []  # two quick epochs: nothing drawn yet
    recorder.close()
    recorder.close()  # twice is once
    assert drawn == [tmp_path / "curves.png"]
    monkeypatch.setattr(records, "PLOT_EVERY_S", 0.0)  # epochs longer than the interval: drawn after each
    (tmp_path / "metrics.jsonl").unlink()
    recorder = RunRecorder(tmp_path, tensorboard=False)
    for record in history:
        recorder.record(record, record["step"])
    assert len(drawn) == 3
    recorder.close()
    assert len(drawn) == 3  # nothing left undrawn
