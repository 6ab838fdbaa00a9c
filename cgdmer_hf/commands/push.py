"""`cgdmer push MODEL_DIR --repo-id ORG/NAME`: upload a saved model folder to the Hub with a generated card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Upload a saved CG-DMER model folder (weights, code, processor) to the Hugging Face Hub with a model card."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="folder written by model/processor/pipeline save_pretrained or by `cgdmer "
                                           "pretrain` (its checkpoints and training_args.bin are left out)")
    parser.add_argument("--repo-id", required=True, help="Hub repository, ORG/NAME (created if needed)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, help="branch to push to (created from main if needed)")
    parser.add_argument("--commit-message", default="Upload CG-DMER model", help="commit summary")
    parser.add_argument("--results", default=None, metavar="JSON",
                        help='evaluation results for the card: {"results": [{"task", "dataset", "value", ...}]}')
    parser.add_argument("--license", default="cc-by-4.0", help="licence of the weights (card metadata)")
    parser.add_argument("--training-data", default=None, metavar="TEXT",
                        help="Markdown paragraph describing the training data (default: PTB-XL folds 1-8)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the folder and print the model card; upload nothing")


def run(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    from ..hub import left_out_training_files, make_model_card, push_model_dir, validate_model_dir

    card_kwargs = {"license": args.license, "training_data": args.training_data}
    left_out = left_out_training_files(args.model_dir) if Path(args.model_dir).is_dir() else []
    if left_out:
        print(f"Leaving out the training files {', '.join(left_out)} (checkpoints and pickled arguments of "
              "`cgdmer pretrain`)", file=sys.stderr)
    if args.dry_run:
        validate_model_dir(args.model_dir)
        print(make_model_card(args.model_dir, args.results, repo_id=args.repo_id, **card_kwargs))
        return 0
    try:
        commit = push_model_dir(
            args.model_dir, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message, results_json=args.results, **card_kwargs,
        )
    except HfHubHTTPError as err:
        print(f"cgdmer push: error: {str(err).splitlines()[0]} {str(err).splitlines()[-1]}", file=sys.stderr)
        return 1
    print(f"Pushed {args.model_dir} to {args.repo_id}: {commit.commit_url}")
    print(f"Pin this version with revision=\"{commit.oid}\"")
    return 0
