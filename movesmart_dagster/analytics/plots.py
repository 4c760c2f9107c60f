"""Small PNG charts for asset metadata (matplotlib, Agg backend: no display needed).

Why a data URI: Dagster's markdown metadata renders an image given inline, so a person
sees the day's shape in the asset catalog without opening a notebook. Charts are kept
small (a few tens of KB) because metadata is stored in the event log.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def png_markdown(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _empty_figure(title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.text(0.5, 0.5, "no data for this day", ha="center", va="center")
    ax.set_axis_off()
    ax.set_title(title)
    return fig


def bar(labels: list[str], values: list[float], title: str, ylabel: str) -> Figure:
    if not labels:
        return _empty_figure(title)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(labels)), values, color="#4f6fd9")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def hourly_line(
    hours: list[Any], series: dict[str, list[float]], title: str, ylabel: str, event_date: str
) -> Figure:
    """Values per hour on the axis of the day's 24 hours (UTC).

    The x axis is the hour of the day, fixed to 0-24: left to matplotlib, a day with a single
    hour plotted as dates spans four years (its date locator widens a one-point range by two
    years each side).
    """
    if not hours:
        return _empty_figure(title)
    x = [h.hour + h.minute / 60 for h in hours]
    fig, ax = plt.subplots(figsize=(6, 3))
    for name, values in series.items():
        ax.plot(x, values, marker="o", markersize=3, label=name)
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3), [f"{h:02d}:00" for h in range(0, 25, 3)])
    ax.set_xlabel(f"{event_date} (UTC)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig


def figure_for(name: str, pdf: Any, event_date: str) -> Figure:
    """The chart of one analytics result for one day (a pandas DataFrame of that day)."""
    if pdf is None or len(pdf) == 0:
        return _empty_figure(name)
    if name == "vehicle_trip_summary":
        top = pdf.sort_values("distance_km", ascending=False).head(20)
        return bar(
            top["deviceId"].astype(str).tolist(), top["distance_km"].tolist(), "Distance per vehicle", "km"
        )
    if name == "hourly_speed_by_area":
        by_hour = pdf.groupby("hour").apply(
            lambda g: (g["avg_speed_kmh"] * g["readings"]).sum() / g["readings"].sum(), include_groups=False
        )
        return hourly_line(
            list(by_hour.index), {"avg speed": by_hour.tolist()}, "Average speed per hour", "km/h", event_date
        )
    if name == "weather_summary":
        return hourly_line(
            pdf["hour"].tolist(),
            {"temperature °C": pdf["avg_temperature_c"].tolist(), "AQI / 10": (pdf["avg_aqi"] / 10).tolist()},
            "Weather per hour",
            "",
            event_date,
        )
    if name == "emergency_incident_summary":
        labels = [f"{t} / {s}" for t, s in zip(pdf["type"], pdf["status"], strict=True)]
        return bar(labels, pdf["incidents"].tolist(), "Incidents by type and status", "incidents")
    return _empty_figure(name)


def chart_for(name: str, pdf: Any, event_date: str) -> str:
    """`figure_for` as markdown with the PNG inline."""
    return png_markdown(figure_for(name, pdf, event_date), f"{name} {event_date}")
