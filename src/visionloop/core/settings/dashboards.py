"""Settings of the operator dashboard."""

from __future__ import annotations

from pydantic import Field

from visionloop.core.settings.base import StrictModel


class DashboardSettings(StrictModel):
    """The Streamlit operator dashboard and the conditions it (and alerts.yml) watch."""

    enabled: bool = Field(default=True, description="Start the dashboard with the service.")
    host: str = Field(default="127.0.0.1", description="Address the dashboard binds.")
    port: int = Field(default=8501, gt=0, lt=65536, description="Port of the dashboard.")
    refresh_s: float = Field(default=2.0, ge=0.5, description="How often live views refresh.")
    api_url: str | None = Field(default=None, description="API the dashboard reads (default: this service's).")
    snapshot_interval_s: float = Field(
        default=1.0, gt=0, description="Least time between two kept snapshots (frame + result) of one camera."
    )
    snapshots_per_camera: int = Field(
        default=20, gt=0, description="Recent annotated frames kept per camera (Live view and explanations)."
    )
    latency_slo_ms: float = Field(default=250.0, gt=0, description="p99 capture-to-result latency objective.")
    label_studio_url: str | None = Field(
        default=None, description="Link shown on the Labeling page (default: the local Label Studio)."
    )
