"""`python -m geneface.app [host=...] [port=...]`: serve the web page (configs/app.yaml)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from geneface.utils.threads import set_threads


@hydra.main(version_base="1.3", config_path="../../configs", config_name="app")
def main(cfg: DictConfig) -> None:
    try:
        from geneface.app.ui import build_app
    except ImportError as err:
        print(f"error: the web app needs Gradio ({err}): install the app extra, pip install -e '.[app]' "
              f"(make setup does)", file=sys.stderr)
        raise SystemExit(1) from None
    set_threads(cfg.runtime.threads)
    output_dir = Path(cfg.paths.output_dir).resolve()
    app = build_app(output_dir, Path(cfg.paths.data_dir).resolve())
    app.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, allowed_paths=[str(output_dir)],
               show_error=True)


if __name__ == "__main__":
    main()
