"""Serve the promptrl Gradio app: `python app.py --preset tiny` (also `promptrl app`).

`--model DIR` serves a trained generator (a model dir, a checkpoint or a promptrl run dir),
`--share` gives a public link and `--host 0.0.0.0` listens on every interface: both need
`--auth user:password` (or PROMPTRL_APP_AUTH, or --auth-file); `--port` chooses the port. The UI itself
lives in the `promptrl/app/` package (`build_app`, `serve`).
"""

from promptrl.app import main

if __name__ == "__main__":
    main()
