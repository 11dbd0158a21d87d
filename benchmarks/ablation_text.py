"""Does text help? Stage 1 only vs stage 1 + stage 2 (text), at the same training budget.

Three variants, each trained from the same seeds with the same number of optimizer steps:

- ``visual``: stage 1 only (segmentation loss), for all the epochs;
- ``text``: stage 1, then stage 2 with the S2M sentences (alignment module + InfoNCE,
  τ = 0.7, weight 0.5), as the paper;
- ``align-only``: the same two stages with the paper's segmentation loss weights but no
  contrastive term (the alignment module alone).

Training scenes and held-out evaluation scenes come from the project's synthetic generator,
which puts look-alike pseudo-changes (ploughed fields next to rubble, repainted roofs,
shadows, illumination, haze, misregistration) in every post scene. Evaluation runs the real
product path (``predict`` → change raster → ``evaluate`` against the label). Prints SeK,
Fscd, mIoU, Pre, Rec per run and mean ± std per variant. Not a test.

With ``--recipe default`` (the default) every run uses the shipped model's recipe
(``configs/s2m_small_cpu.yaml``): frozen ImageNet EfficientNet-Lite0 from its wheel, the head
anchored on "no change", the all-MiniLM-L6-v2 sentence encoder for the text stage, and
synthetic scenes plus realmix pairs made from the public-domain UCMerced tiles in
``../shared/realdata`` (made once, shared by all runs). ``--recipe legacy`` is the first
ablation's setting (random-init MobileNetV3, a CLIP text tower with random weights, synthetic
scenes only). With ``--realdata`` every trained model is also scored on the labelled real sets
through ``benchmarks/realdata.py`` (binary F1 per set and pooled, identical pairs and
pseudo-change).

    python benchmarks/ablation_text.py --out runs/ablation --realdata   # 3 seeds, 3 variants
    (rerun the same command after an interruption: finished runs are reused)
    python benchmarks/ablation_text.py --seeds 0 --stage1-epochs 2 --stage2-epochs 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

VARIANTS = ("visual", "text", "align-only")


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
UCMERCED = SHARED / "usgs-ucmerced-urban" / "images"
REAL_SETS = "levir,dsifn,airchange,oscd"


def make_config(path: Path, variant: str, seed: int, args, train_sources: list[dict]) -> Path:
    e1, e2 = args.stage1_epochs, args.stage2_epochs
    loss = {
        "focal": 0.4,
        "dice": 0.3,
        "lovasz": 0.3,
        "tau": 0.7,
        "contrastive": 0.0 if variant == "align-only" else 0.5,
    }
    train = {
        "batch_size": args.batch,
        "lr": args.lr,
        "lr_schedule": "cosine",
        "weight_decay": 0.05,
        "device": "auto",
        "stage1_epochs": e1 + e2 if variant == "visual" else e1,
        "stage2_epochs": 0 if variant == "visual" else e2,
        "max_steps_per_epoch": args.steps_per_epoch,
        "loss": loss,
    }
    if args.recipe == "default":  # the shipped model's recipe (configs/s2m_small_cpu.yaml)
        cfg = {
            "seed": seed,
            "classes": "gaza_change",
            "model": {
                "backbone": "tf_efficientnet_lite0",
                "decoder_channels": 64,
                "attn_heads": 4,
                "no_change_margin": 1.0,
            },
            "pretrained_backbone": "packaged",
            "text_encoder": {"name": "all-MiniLM-L6-v2"},
            "data": {"tile_size": args.tile, "bands": [1, 2, 3], "train": train_sources},
            "train": {**train, "backbone_lr": 0, "amp": True, "grad_clip": 1.0, "num_workers": 0},
        }
    else:  # the first ablation's setting
        cfg = {
            "seed": seed,
            "classes": "gaza_change",
            "model": {"backbone": args.backbone, "decoder_channels": 64, "attn_heads": 4},
            "text_encoder": {"name": "ViT-B-32"},
            "data": {"tile_size": args.tile, "train": train_sources},
            "train": train,
        }
    path.write_text(yaml.safe_dump(cfg))
    return path


def score_synthetic(run: Path, model: Path, evals: list[dict], table) -> dict:
    """SeK, Fscd, ... of ``model`` on the held-out synthetic scenes, through predict + evaluate."""
    from s2m_geo.evaluate import evaluate_rasters
    from s2m_geo.predict.pipeline import PredictOptions, predict

    pred_dir, label_dir = run / "preds", run / "labels"
    pred_dir.mkdir(exist_ok=True)
    label_dir.mkdir(exist_ok=True)
    for i, e in enumerate(evals):
        predict(e["pre"], e["post"], pred_dir / f"{i}.tif", model, PredictOptions(batch_size=8), overwrite=True)
        (label_dir / f"{i}.tif").write_bytes(Path(e["label"]).read_bytes())
    return evaluate_rasters(pred_dir, label_dir, table)


def score_real(root: Path, models: dict[str, Path], args) -> dict:
    """Score every trained model on the labelled real sets (benchmarks/realdata.py, quick mode)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import realdata

    out = root / "realdata.json"
    argv = ["--shared", str(args.shared), "--sets", REAL_SETS, "--quick", "--no-baselines", "--json", str(out)]
    for name, path in models.items():
        argv += ["--model", f"{name}={path}"]
    realdata.main(argv)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument(
        "--recipe",
        choices=("default", "legacy"),
        default="default",
        help="default: the shipped model's recipe; legacy: the first ablation's setting",
    )
    ap.add_argument("--backbone", default="mobilenetv3_large_100", help="backbone of --recipe legacy")
    ap.add_argument(
        "--realmix-count", type=int, default=400, help="realmix pairs from the UCMerced tiles (--recipe default)"
    )
    ap.add_argument("--shared", type=Path, default=SHARED, help="the realdata folder")
    ap.add_argument(
        "--realdata",
        action="store_true",
        help="also score every model on the labelled real sets (benchmarks/realdata.py --quick)",
    )
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--stage1-epochs", type=int, default=4)
    ap.add_argument("--stage2-epochs", type=int, default=2)
    ap.add_argument("--steps-per-epoch", type=int, default=20)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[201, 202, 203])
    ap.add_argument("--eval-seeds", type=int, nargs="+", default=[9101, 9102])
    ap.add_argument("--size", type=int, default=1024, help="side of each synthetic scene")
    ap.add_argument("--out", type=Path, default=None, help="keep runs here (default: a temp folder)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*RANDOM weights.*")

    from s2m_geo.classes import load_class_table
    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.train.trainer import train

    table = load_class_table()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        scenes = []
        for s in args.train_seeds:
            p = write_scene(root / f"train{s}", SceneSpec(size=args.size, seed=s))
            scenes.append({k: str(p[k]) for k in ("pre", "post", "label")})
        sources: list[dict] = [{"scenes": scenes}]
        if args.recipe == "default":
            if not (args.shared / "usgs-ucmerced-urban" / "images").is_dir():
                raise SystemExit(
                    f"{args.shared}: no usgs-ucmerced-urban/images for the realmix pairs; "
                    f"pass --shared or use --recipe legacy"
                )
            from s2m_geo.train.realmix import write_realmix

            mix = write_realmix(
                root / "realmix",
                args.shared / "usgs-ucmerced-urban" / "images",
                args.realmix_count,
                seed=7,
                size=args.tile,
                table=table,
            )
            sources.append({"folder": str(mix)})
            setting = (
                f"frozen ImageNet tf_efficientnet_lite0, anchored head, all-MiniLM-L6-v2 text; "
                f"{args.realmix_count} realmix pairs"
            )
        else:
            setting = f"backbone {args.backbone} (random init), CLIP text tower random init"
        evals = [write_scene(root / f"eval{s}", SceneSpec(size=args.size, seed=s)) for s in args.eval_seeds]
        print(
            f"budget per run: {args.stage1_epochs + args.stage2_epochs} epochs x "
            f"{args.steps_per_epoch} steps x batch {args.batch} ({args.tile}px tiles); {setting}; "
            f"train seeds {args.train_seeds}, held-out seeds {args.eval_seeds}, {args.size}px scenes",
            flush=True,
        )
        print(f"{'variant':<11} {'seed':>4} {'SeK':>7} {'Fscd':>7} {'mIoU':>7} {'Pre':>7} {'Rec':>7} {'min':>5}")
        results: dict[str, list[dict]] = {v: [] for v in args.variants}
        models: dict[str, Path] = {}
        for seed in args.seeds:
            for variant in args.variants:
                run = root / f"{variant}-{seed}"
                t0 = time.perf_counter()
                cfg = make_config(root / f"{variant}-{seed}.yaml", variant, seed, args, sources)
                # with --out, a rerun reuses finished runs and resumes interrupted ones
                if (run / "model.safetensors").is_file():
                    model = run / "model.safetensors"
                else:
                    model = train(cfg, run, resume=(run / "state.json").is_file())
                models[f"{variant}-{seed}"] = Path(model)
                s = score_synthetic(run, Path(model), evals, table)
                s["minutes"] = (time.perf_counter() - t0) / 60
                results[variant].append(s)
                print(
                    f"{variant:<11} {seed:>4} {s['sek']:7.4f} {s['fscd']:7.4f} {s['miou']:7.4f} "
                    f"{s['precision']:7.4f} {s['recall']:7.4f} {s['minutes']:5.1f}",
                    flush=True,
                )
        print("\nmean ± std over seeds")
        for variant, runs in results.items():
            cells = []
            for key in ("sek", "fscd", "miou", "precision", "recall"):
                vals = [r[key] for r in runs]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.4f} ± {sd:.4f}")
            print(
                f"{variant:<11} " + "  ".join(f"{k}={c}" for k, c in zip(("SeK", "Fscd", "mIoU", "Pre", "Rec"), cells))
            )
        real = score_real(root, models, args) if args.realdata else None
        if real:
            print("\nreal sets (binary F1, quick mode): mean ± std over seeds")
            for variant in results:
                cells = []
                for key in REAL_SETS.split(",") + ["pooled"]:
                    vals = [_real_f1(real, f"{variant}-{seed}", key) for seed in args.seeds]
                    vals = [v for v in vals if v is not None]
                    if vals:
                        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                        cells.append(f"{key}={statistics.mean(vals):.3f} ± {sd:.3f}")
                print(f"{variant:<11} " + "  ".join(cells))
        if args.out:
            (root / "ablation.json").write_text(
                json.dumps(
                    {
                        "synthetic": {
                            v: [
                                {k: r[k] for k in ("sek", "fscd", "miou", "precision", "recall", "minutes")}
                                for r in runs
                            ]
                            for v, runs in results.items()
                        },
                        "real": real,
                    },
                    indent=2,
                )
            )


def _real_f1(real: dict, method: str, key: str) -> float | None:
    """Binary F1 of one method on one set (or pooled) from realdata.py's JSON."""
    m = real.get("results", {}).get(method)
    if not m:
        return None
    block = m.get("pooled") if key == "pooled" else m.get("sets", {}).get(key)
    return None if not block else block.get("f1")


if __name__ == "__main__":
    main()
