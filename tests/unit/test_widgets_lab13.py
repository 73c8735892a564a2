"""Lab 13's compute-cost explorer builds headless, and its text follows every control."""

from __future__ import annotations

import ipywidgets as widgets

from dlcourse.widgets import compute_cost_explorer


def _controls(box: widgets.Widget) -> dict[str, widgets.Widget]:
    found: dict[str, widgets.Widget] = {}
    for child in box.children:
        if isinstance(child, widgets.Box):
            found.update(_controls(child))
        else:
            found[child.description or "summary"] = child
    return found


def test_explorer_text_follows_the_controls() -> None:
    controls = _controls(compute_cost_explorer(params=110e6, tokens=1.28e11))
    summary = controls["summary"]
    first = summary.value
    assert "8.45e+19 FLOPs" in first and "on 8 GPUs" in first  # 6 · 110e6 · 1.28e11

    controls["params N"].value = 1e9
    assert summary.value != first and f"{6 * 1e9 * 1.28e11:.3g} FLOPs" in summary.value  # 7.68e+20
    hours_a100 = 6 * 1e9 * 1.28e11 / (312e12 * 0.4) / 3600  # 1,709 GPU-hours
    assert f"{hours_a100:,.0f} GPU-hours" in summary.value

    controls["accelerator"].value = "H100"
    assert f"{6 * 1e9 * 1.28e11 / (989e12 * 0.4) / 3600:.3g} GPU-hours at 40% of 989 TFLOP/s" in summary.value

    controls["GPUs"].value = 64
    assert "on 64 GPUs" in summary.value

    hours_h100 = 6 * 1e9 * 1.28e11 / (989e12 * 0.4) / 3600
    assert controls["W per GPU"].value == 700  # the H100's board power followed the accelerator
    assert f"{hours_h100 * 700 / 1000:.3g} kWh" in summary.value
    controls["W per GPU"].value = 350
    assert f"{hours_h100 * 350 / 1000:.3g} kWh" in summary.value


def test_explorer_counts_the_facility_and_its_co2() -> None:
    controls = _controls(compute_cost_explorer(params=110e6, tokens=1.28e11, pue=1.2, grid_g_per_kwh=400))
    summary = controls["summary"]
    boards = 6 * 110e6 * 1.28e11 / (312e12 * 0.4) / 3600 * 400 / 1000  # 75.2 kWh for the A100 boards
    assert f"{boards * 1.2:.3g} kWh at the facility (PUE 1.20)" in summary.value
    assert f"{boards * 1.2 * 400 / 1000:.3g} kg CO2 at an assumed 400 g per kWh" in summary.value
    controls["PUE"].value = 1.5
    assert f"{boards * 1.5:.3g} kWh at the facility (PUE 1.50)" in summary.value
    controls["g CO2/kWh"].value = 50
    assert f"{boards * 1.5 * 50 / 1000:.3g} kg CO2" in summary.value
