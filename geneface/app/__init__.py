"""The web page (`python -m geneface.app`, or `make app`): ui.py lays it out with Gradio, actions.py
does the work with the house's own commands and files. Needs the `app` extra (make setup installs it)."""
