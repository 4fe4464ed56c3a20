"""The labelled turns CSV (``text,intent,risks,context,domain,language,style``) and its seeded split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from classifiers.schemas import Conversation

COLUMNS = ("text", "intent", "risks", "context", "domain", "language", "style")


def load_turns(path: str | Path) -> pd.DataFrame:
    """The labelled CSV with empty strings for missing values; fails on missing columns or empty labels."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    frame["text"] = frame["text"].str.strip()
    frame = frame[frame["text"] != ""].reset_index(drop=True)
    if (frame["intent"] == "").any():
        raise ValueError(f"{path} has rows without an intent")
    return frame


def risk_sets(frame: pd.DataFrame) -> list[set[str]]:
    return [{risk.strip() for risk in cell.split(";") if risk.strip()} for cell in frame["risks"]]


def label_sets(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Intents and risks as found in the data, sorted."""
    return sorted(set(frame["intent"])), sorted(set().union(*risk_sets(frame)))


def conversations(frame: pd.DataFrame) -> list[Conversation]:
    return [
        Conversation(latest_user_text=text, previous_assistant_text=context or None, message_count=3 if context else 1)
        for text, context in zip(frame["text"], frame["context"], strict=True)
    ]


def split_turns(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split stratified by intent; ``test_size`` 0 keeps every row for training."""
    if test_size <= 0:
        return frame, frame.iloc[0:0]
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame["intent"])
    return train.sort_index(), test.sort_index()
