"""Serve the promptrl Gradio app: `python app.py --preset tiny` (also `promptrl app`).

`--model DIR` serves a trained generator (a model dir, a checkpoint or a promptrl run dir),
`--share` gives a public link (Colab), `--host` / `--port` choose where to listen. The UI itself
lives in `promptrl/app.py` (`build_app`).
"""

from promptrl.app import main

if __name__ == "__main__":
    main()
