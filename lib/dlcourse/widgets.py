"""Interactive widgets for the labs. Each also runs headless (CI), where it simply renders once."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def _redraw(output, make_figure: Callable[[], object]) -> None:
    """Replace what `output` shows with a new figure; close it afterwards (headless show() keeps figures open)."""
    import matplotlib.pyplot as plt

    with output:
        output.clear_output(wait=True)
        fig = make_figure()
        plt.show()
        plt.close(fig)


def _slider_explorer(description: str, n: int, start: int, summary: Callable[[int], str],
                     plot: Callable[[int], object]):
    """A slider over 0..n-1, an HTML line `summary(i)` (bold) and the figure `plot(i)`, redrawn when it moves."""
    import ipywidgets as widgets

    slider = widgets.IntSlider(value=int(start), min=0, max=n - 1, description=description, continuous_update=False)
    text = widgets.HTML()
    output = widgets.Output()

    def draw(_change: object = None) -> None:
        index = int(slider.value)
        text.value = f"<b>{summary(index)}</b>"
        _redraw(output, lambda: plot(index))

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, text, output])


def image_browser(images: np.ndarray, labels: Sequence, *, class_names: Sequence[str] | None = None):
    """A slider over a set of images that shows the chosen image and its label."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    slider = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
    caption = widgets.Label()
    output = widgets.Output()

    def draw(index: int) -> None:
        label = int(labels[index])
        name = class_names[label] if class_names else str(label)
        caption.value = f"image {index}: label {name}"

        def figure():
            fig, ax = plt.subplots(figsize=(2.2, 2.2))
            ax.imshow(np.asarray(images[index]).squeeze(), cmap="gray_r")
            ax.set_title(f"label {name}")
            ax.axis("off")
            return fig

        _redraw(output, figure)

    slider.observe(lambda change: draw(change["new"]), names="value")
    draw(0)
    return widgets.VBox([slider, caption, output])


def neuron_explorer(w: Sequence[float], x: Sequence[float], b: float = 0.0, activation: str = "sigmoid"):
    """One neuron a = f(w·x + b) (lab 01): a slider moves the bias b, a menu picks the activation;
    the text shows z and a, the plot marks (z, a) on the activation curve."""
    import ipywidgets as widgets

    from dlcourse.functions import ACTIVATIONS
    from dlcourse.plot import plot_activation

    weighted = float(np.dot(np.asarray(w, dtype=float), np.asarray(x, dtype=float)))
    bias = widgets.FloatSlider(value=float(b), min=-5.0, max=5.0, step=0.1, description="bias b", continuous_update=False)
    menu = widgets.Dropdown(options=list(ACTIVATIONS), value=activation, description="activation")
    caption = widgets.HTML()
    output = widgets.Output()

    def draw(*_: object) -> None:
        z = weighted + bias.value
        a = float(ACTIVATIONS[menu.value].fn(z))
        caption.value = f"z = w·x + b = {weighted:.4f} + ({bias.value:.1f}) = {z:.4f}; a = {menu.value}(z) = {a:.4f}"
        _redraw(output, lambda: plot_activation(menu.value, [round(z, 4)], title=f"one neuron: {menu.value}(w·x + b)"))

    bias.observe(draw, names="value")
    menu.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([bias, menu]), caption, output])


def activation_summary(name: str, z_range: tuple[float, float] = (-6.0, 6.0), depth: int = 10) -> str:
    """One sentence: an activation's largest slope on z_range and what `depth` such layers leave of a gradient (lab 03)."""
    from dlcourse.plot import max_slope

    peak, where = max_slope(name, z_range)
    low, high = float(z_range[0]), float(z_range[1])
    return (f"{name}: the largest f′ on [{low:g}, {high:g}] is {peak:.3g} (at z = {where:.2f}); "
            f"after {int(depth)} layers the gradient is at most {peak ** int(depth):.2g} times as large, "
            f"before the weights multiply in.")


def activation_explorer(activation: str = "sigmoid", z_range: tuple[float, float] = (-6.0, 6.0), depth: int = 10):
    """Pick an activation, slide the input range and the number of layers (lab 03): the plot shows f and
    f′ and the most gradient that many layers can keep (max|f′|^k); the text says it in numbers."""
    import ipywidgets as widgets

    from dlcourse.functions import ACTIVATIONS
    from dlcourse.plot import plot_activation_through_depth

    menu = widgets.Dropdown(options=list(ACTIVATIONS), value=activation, description="activation")
    z_slider = widgets.FloatRangeSlider(value=tuple(z_range), min=-10.0, max=10.0, step=0.5, description="input z",
                                        continuous_update=False)
    depth_slider = widgets.IntSlider(value=int(depth), min=1, max=50, description="layers", continuous_update=False)
    summary = widgets.HTML()
    output = widgets.Output()

    def draw(*_: object) -> None:
        chosen = (menu.value, tuple(z_slider.value), depth_slider.value)
        summary.value = activation_summary(*chosen)
        _redraw(output, lambda: plot_activation_through_depth(*chosen))

    for control in (menu, z_slider, depth_slider):
        control.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([menu, z_slider, depth_slider]), summary, output])


def learning_rate_summary(optimizer: str, lr: float, steps: int = 50, condition: float = 50.0) -> tuple[str, np.ndarray]:
    """One line about a run on lab 04's ill-conditioned quadratic, and its path (lab 04's widget text)."""
    from dlcourse.optim import OPTIMIZERS, gd_stability_limit, ill_conditioned_quadratic, run

    objective, A = ill_conditioned_quadratic(condition)
    path = run(OPTIMIZERS[optimizer], objective.grad, np.array([-4.0, 3.0]), steps, lr=lr)
    finite = path[np.all(np.isfinite(path), axis=1)]
    limit = f" (GD is stable for lr < 2/L = {gd_stability_limit(A):.3f})" if optimizer == "GD" else ""
    if len(finite) <= steps:
        return f"{optimizer}, lr {lr:.3g}: diverges — |θ| passed 1e8 at step {len(finite)}{limit}", path
    return f"{optimizer}, lr {lr:.3g}: loss after {steps} steps {objective.f(finite[-1]):.2e}{limit}", path


def learning_rate_explorer(steps: int = 50, condition: float = 50.0, lr: float = 0.02):
    """Lab 04: a log-scale learning-rate slider and an optimizer menu; shows the path on an
    ill-conditioned quadratic, the loss per step, and a line that says how the run ended."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from dlcourse.optim import OPTIMIZERS, ill_conditioned_quadratic, plot_paths

    objective, _ = ill_conditioned_quadratic(condition)
    slider = widgets.FloatLogSlider(value=lr, base=10, min=-3, max=0, step=0.05, description="lr",
                                    readout_format=".3g", continuous_update=False)
    menu = widgets.Dropdown(options=list(OPTIMIZERS), value="GD", description="optimizer")
    summary = widgets.HTML()
    output = widgets.Output()

    def draw(_change: object = None) -> None:
        text, path = learning_rate_summary(menu.value, slider.value, steps, condition)
        summary.value = f"<b>{text}</b>"
        losses = [objective.f(p) for p in path if np.all(np.isfinite(p))]

        def figure():
            fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
            plot_paths(left, objective, {f"{menu.value}, lr {slider.value:.3g}": path})
            right.semilogy(range(len(losses)), losses)
            right.set_xlabel("step")
            right.set_ylabel("loss f(θ)")
            right.set_title("loss per step (log scale)")
            fig.tight_layout()
            return fig

        _redraw(output, figure)

    for control in (slider, menu):
        control.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([slider, menu]), summary, output])


def prediction_summary(index: int, labels: Sequence[int], probabilities: np.ndarray) -> str:
    """One line about image `index`: its label, the network's guess and how sure it is (lab 05's widget text)."""
    probs = np.asarray(probabilities[index], dtype=float)
    label, guess = int(labels[index]), int(np.argmax(probs))
    verdict = "right" if guess == label else "WRONG"
    return (f"image {index}: label {label}, predicted {guess} with probability {probs[guess]:.3f} ({verdict}); "
            f"probability of the true label {probs[label]:.3f}")


def plot_prediction(image: np.ndarray, label: int, probabilities: np.ndarray, *, title: str | None = None):
    """An image beside the bar chart of the 10 class probabilities; the true class's bar is green,
    a wrong guess red. Returns the figure (lab 05)."""
    import matplotlib.pyplot as plt

    probs = np.asarray(probabilities, dtype=float)
    guess = int(np.argmax(probs))
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.8), gridspec_kw={"width_ratios": [1, 2]})
    left.imshow(np.asarray(image).reshape(28, 28), cmap="gray_r")
    left.set_title(f"label {int(label)}")
    left.axis("off")
    colours = ["tab:green" if k == int(label) else "tab:red" if k == guess else "tab:grey" for k in range(len(probs))]
    right.bar(range(len(probs)), probs, color=colours)
    right.set_xticks(range(len(probs)))
    right.set_ylim(0, 1)
    right.set_xlabel("class (digit)")
    right.set_ylabel("predicted probability")
    right.set_title(title or f"predicted {guess} ({probs[guess]:.2f})")
    fig.tight_layout()
    return fig


def prediction_explorer(images: np.ndarray, labels: Sequence[int], probabilities: np.ndarray, start: int = 0):
    """Lab 05: a slider over images (e.g. the test set); shows the image, the network's class
    probabilities as bars, and a line naming the label, the guess and its probability."""
    return _slider_explorer("image", len(images), start, lambda i: prediction_summary(i, labels, probabilities),
                            lambda i: plot_prediction(images[i], int(labels[i]), probabilities[i]))


VISIBLE_WHITESPACE = {" ": "␣", "\n": "⏎"}  # how a space or newline is drawn as a token label


def attention_summary(tokens: Sequence[str], weights: np.ndarray, query: int, top: int = 3) -> str:
    """One line naming query token `query` and the `top` keys it attends to most, with their weights (lab 09)."""
    row = np.asarray(weights, dtype=float)[query]
    order = np.argsort(-row, kind="stable")[:top]
    best = ", ".join(f"“{tokens[j]}” ({j}) {row[j]:.3f}" for j in order)
    return f"query {query} “{tokens[query]}” attends most to: {best}"


def plot_attention_row(tokens: Sequence[str], weights: np.ndarray, query: int):
    """Bar chart of one query's attention weights over the keys; the query's own position in orange (lab 09)."""
    import matplotlib.pyplot as plt

    row = np.asarray(weights, dtype=float)[query]
    fig, ax = plt.subplots(figsize=(0.6 * len(tokens) + 2.0, 3.0))
    ax.bar(range(len(row)), row, color=["tab:orange" if j == query else "tab:blue" for j in range(len(row))])
    ax.set_xticks(range(len(tokens)), list(tokens), rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_xlabel("key token")
    ax.set_ylabel("attention weight")
    ax.set_title(f"where “{tokens[query]}” (query {query}) looks")
    fig.tight_layout()
    return fig


def attention_explorer(tokens: Sequence[str], weights: np.ndarray, start: int = 0):
    """Lab 09: a slider picks a query token; the text names its most-attended keys and the bars show
    its whole row of (T_q, T_k) attention weights."""
    import html

    return _slider_explorer("query", len(tokens), start,
                            lambda q: html.escape(attention_summary(tokens, weights, q)),  # tokens are text
                            lambda q: plot_attention_row(tokens, weights, q))


def fill_mask_summary(predictions: Sequence[tuple[str, float]]) -> str:
    """'“e” 0.412 · “a” 0.201 · …' for top-k (character, probability) pairs (lab 11); spaces and newlines made visible."""
    return " · ".join(f"“{VISIBLE_WHITESPACE.get(c, c)}” {p:.3f}" for c, p in predictions)


def plot_fill_mask(predictions: Sequence[tuple[str, float]], text: str):
    """Bar chart of top-k fill-in probabilities for the [MASK] in ``text`` (lab 11)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    ax.bar(range(len(predictions)), [p for _, p in predictions], color="tab:blue")
    ax.set_xticks(range(len(predictions)), [VISIBLE_WHITESPACE.get(c, c) for c, _ in predictions])
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted character")
    ax.set_ylabel("probability")
    ax.set_title(f"fill-in for “{text[-40:]}”")
    fig.tight_layout()
    return fig


def fill_mask_explorer(model, tokenizer, text: str = "To be or not to b[MASK]", k: int = 5, max_k: int = 10):
    """Lab 11: type a line with one [MASK]; a slider sets k; the text lists the top-k characters with their
    probabilities and the bars show them. A line without [MASK] gets a sentence instead of an error."""
    import html

    import ipywidgets as widgets

    from dlcourse.mlm_model import fill_mask

    line = widgets.Text(value=text, description="text", layout=widgets.Layout(width="90%"), continuous_update=False)
    slider = widgets.IntSlider(value=int(k), min=1, max=int(max_k), description="top k", continuous_update=False)
    summary = widgets.HTML()
    output = widgets.Output()

    def draw(_change: object = None) -> None:
        try:
            predictions = fill_mask(model, tokenizer, line.value, int(slider.value))
        except ValueError as error:  # no mask token in the line
            summary.value = f"<b>{html.escape(str(error))}</b>"
            output.clear_output()
            return
        summary.value = f"<b>top {slider.value}: {html.escape(fill_mask_summary(predictions))}</b>"
        _redraw(output, lambda: plot_fill_mask(predictions, line.value))

    slider.observe(draw, names="value")
    line.observe(draw, names="value")
    draw()
    return widgets.VBox([line, slider, summary, output])


def compute_cost_explorer(params: float = 110e6, tokens: float = 1.28e11, pue: float = 1.0,
                          grid_g_per_kwh: float = 0.0):
    """Lab 13: sliders for parameters N, tokens D, utilisation, GPUs, the (assumed) price per GPU-hour, the
    power per GPU, the facility's PUE and the grid's CO2 per kWh, a menu of accelerators (peak FLOP/s, and their
    board power as the power default); the text gives 6·N·D FLOPs, GPU-hours, days, cost, the boards' energy and
    the facility's, and the CO2 (dlcourse.compute)."""
    import html

    import ipywidgets as widgets

    from dlcourse.compute import ACCELERATORS, estimate_summary, estimate_training

    def log_slider(value: float, low: int, high: int, description: str):
        return widgets.FloatLogSlider(value=value, base=10, min=low, max=high, step=0.01, description=description,
                                      readout_format=".3g", continuous_update=False)

    n_params, n_tokens = log_slider(params, 6, 12, "params N"), log_slider(tokens, 8, 13, "tokens D")
    chip = widgets.Dropdown(options=[(a.name, key) for key, a in ACCELERATORS.items()], value="A100",
                            description="accelerator")
    utilisation = widgets.FloatSlider(value=0.4, min=0.05, max=0.8, step=0.05, description="utilisation",
                                      continuous_update=False)
    gpus = widgets.IntSlider(value=8, min=1, max=4096, description="GPUs", continuous_update=False)
    price = widgets.FloatSlider(value=2.0, min=0.0, max=10.0, step=0.1, description="USD/GPU-h",
                                continuous_update=False)
    power = widgets.IntSlider(value=ACCELERATORS["A100"].watts, min=50, max=1500, step=10, description="W per GPU",
                              continuous_update=False)
    facility = widgets.FloatSlider(value=pue, min=1.0, max=2.5, step=0.05, description="PUE",
                                   continuous_update=False)
    grid = widgets.IntSlider(value=round(grid_g_per_kwh), min=0, max=1000, step=10, description="g CO2/kWh",
                             continuous_update=False)
    summary = widgets.HTML()

    def draw(*_: object) -> None:
        estimate = estimate_training(n_params.value, n_tokens.value, peak_flops=ACCELERATORS[chip.value].peak_flops,
                                     watts=power.value, utilisation=utilisation.value, n_gpus=gpus.value,
                                     price_per_gpu_hour=price.value, pue=facility.value,
                                     grid_g_per_kwh=grid.value)
        summary.value = "<br>".join(html.escape(line) for line in estimate_summary(estimate).splitlines())

    def pick_chip(change: dict) -> None:
        power.value = ACCELERATORS[change["new"]].watts  # its datasheet board power; the slider can override it

    chip.observe(pick_chip, names="value")
    controls = (n_params, n_tokens, chip, utilisation, gpus, price, power, facility, grid)
    for control in controls:
        control.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox(list(controls[:3])), widgets.HBox(list(controls[3:7])),
                         widgets.HBox(list(controls[7:])), summary])
