"""The Streamlit operator dashboard, SHAP explanations, Grafana and Prometheus configuration."""
