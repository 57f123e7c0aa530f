"""The operator's dashboard: ``streamlit run dashboards/app.py`` (``visionloop dashboard`` runs it for you).

Live is the default page, served at ``/``; the others at ``/cameras``, ``/models``, ``/drift``, ``/explain`` and
``/labeling``.

Settings come the usual way (``configs/default.yaml``, ``VISIONLOOP_CONFIG``, ``VISIONLOOP_*``). Every page only
reads (Redis, the API, ``/metrics``); actions go through the API with the token typed in the sidebar.
"""

from __future__ import annotations

import streamlit as st

from visionloop.dashboards.views import cameras, common, drift, explain, labeling, live, models

PAGES = (
    (live.render, "Live", "live", ":material/monitoring:"),
    (cameras.render, "Cameras", "cameras", ":material/videocam:"),
    (models.render, "Models & A/B", "models", ":material/compare_arrows:"),
    (drift.render, "Drift & accuracy", "drift", ":material/trending_down:"),
    (explain.render, "Explain", "explain", ":material/visibility:"),
    (labeling.render, "Labeling", "labeling", ":material/label:"),
)


def main() -> None:
    st.set_page_config(page_title="visionloop", page_icon=":material/visibility:", layout="wide")
    pages = [
        st.Page(fn, title=title, url_path=path, icon=icon, default=i == 0)
        for i, (fn, title, path, icon) in enumerate(PAGES)
    ]
    page = st.navigation(pages)
    common.token_input()
    ctx = common.context()
    st.sidebar.caption(f"API {ctx.api_url}")
    common.banners(ctx)
    page.run()


main()
