"""The report's "About this run" page: the configuration as a reader would say it, with the
banner when the run's films are synthetic (:func:`patchcxr.configuration.data_banner`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from patchcxr.classification.settings import recipe_settings
from patchcxr.configuration import data_banner, enabled_sources, synthetic_inputs
from patchcxr.paper.report import page


def _join(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def config_prose(config: Mapping[str, Any]) -> list[str]:
    """The configuration as a reader would say it: one paragraph per stage, the values that
    change a result (the full configuration is in the report's configuration section)."""
    sources = config["sources"]
    made = set(synthetic_inputs(config))
    described = [
        f"{n} ({sources[n]['format']}, {'generated phantoms' if n in made else sources[n].get('path') or 'downloaded'})"
        for n in enabled_sources(config)
    ]
    c, seg, stats = config["classification"], config["segmentation"], config["statistics"]
    labels = c["train"]["labels"]
    classes = "four classes, viral and COVID-19 merged (as the paper trains)" if labels == "label4" else "five classes"
    split = config["splits"]["classification"]
    paragraphs = [
        f"Data: {len(described)} enabled sources: {_join(described)}. The classifiers learn {classes}; "
        f"patients are split {split['train']:.0%} / {split['val']:.0%} / {split['test']:.0%} into train, "
        f"validation and test (split seed {config['splits']['seed']}).",
        f"Preprocessing: histogram equalisation and gamma {config['preprocessing']['gamma']}. "
        f"Segmentation: {_join(list(seg['train_models']))} at {seg['size']}² px, "
        f"{seg['train']['epochs']} epochs at most; the lung masks of the classifiers come from "
        f"{seg['mask_model']} ({c['mask_source']} masks); {_classified_masks(config['splits']['segmentation'])}.",
    ]
    for model in c["models"]:
        run = recipe_settings(c, int(c["train"]["seeds"][0]), model)
        sees = (
            f"random {run['patch']}² lung-centred patches of the {c['input_size']}² masked film, "
            f"K = {c['inference']['k']} patches vote ({c['inference']['vote']} vote, {c['inference']['mode']} mode)"
            if model == "local"
            else f"the whole masked film resized to {run['patch']}²"
        )
        paragraphs.append(
            f"Classifier {model}: {run['backbone']} on {sees}; recipe {run['recipe']}: {run['optimizer']}, "
            f"learning rate {run['lr']:g}, batch {run['batch_size']}, at most {run['epochs']} epochs, "
            f"{run['draws_per_film']} draw(s) per film per epoch, epoch kept by {run['select']}."
        )
    route = c["weights"]["route"]
    weights = "random weights (from scratch)" if route == "none" else f"ImageNet weights by the {route} route"
    tracking = config["tracking"]
    paragraphs.append(
        f"Initialisation: {weights}. "
        f"Training seeds: {_join([str(s) for s in c['train']['seeds']])} (one run per seed and classifier)."
    )
    audit = config["audit"]
    paragraphs.append(
        f"Statistics: patient-level bootstrap intervals ({c['inference']['bootstrap']} resamples), "
        f"{stats['permutations']} permutations per test, no figure for a group of fewer than "
        f"{stats['min_patients']} patients. Confound audit: "
        + (f"on (views {_join(list(audit['views']))}, {audit['folds']} fold(s))" if audit["enabled"] else "off")
        + f"; leave-one-source-out: {'on' if config['external']['leave_one_source_out'] else 'off'}. "
        f"Tracking: {'MLflow, experiment ' + tracking['experiment'] if tracking['enabled'] else 'off'}."
    )
    return paragraphs


def _classified_masks(split: Mapping[str, Any]) -> str:
    """How the films the classifier sees are masked (splits.segmentation.classified), in words."""
    policy = split["classified"]
    if policy == "crossfit":
        return (
            f"each classified film is masked by one of {split['folds']} cross-fitted networks, "
            "the one that did not learn its patient's tracing"
        )
    return {
        "held_out": "no classified film's tracing trains the segmenter",
        "follow": "classified films' tracings train the segmenter by their classification split",
        "ignore": "classified films' tracings may train the segmenter (the paper's design)",
    }[policy]


def about_html(config: Mapping[str, Any], config_text: str) -> str:
    """The report's "About this run" page: the banner, the configuration in prose, and the
    whole configuration as YAML behind a fold."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in config_prose(config))
    body += f"<details><summary>The full configuration (YAML)</summary><pre>{html.escape(config_text)}</pre></details>"
    return page("About this run", data_banner(config), body)
