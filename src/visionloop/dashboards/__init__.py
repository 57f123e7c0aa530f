"""The operator's Streamlit dashboard (``app.py`` and its pages in ``views/``): live cameras and latency, camera
states, models and the A/B scoreboard with promote and rollback, drift and accuracy, SHAP explanations, the labeling
queue. It reads the API, Redis and Prometheus text, and acts only through the API. The Prometheus alert rules it
shares (``alerts.yml``, with promtool tests in ``alerts_test.yml``) sit here too. Nothing imports this package:
``visionloop dashboard`` runs the app by its path."""
