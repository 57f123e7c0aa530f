"""Reserved for the operator dashboard (Streamlit), which lands with its own issue; nothing lives here yet and
nothing may import it."""
