"""Trainer.fit trains in training mode even when handed a model in eval mode."""

import torch
from torch import nn

from attnlab.training import ResumableLoader, Trainer, make_task


class Probe(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.modes: list[bool] = []

    def forward(self, ids):
        self.modes.append(self.training)
        return self.lin(nn.functional.one_hot(ids, 4).float())


def test_fit_switches_an_eval_model_to_training(tmp_path):
    data = [{"ids": torch.tensor([1, 2, 3]), "labels": torch.tensor([2, 0, 1])} for _ in range(8)]

    def collate(rows):
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    model = Probe().eval()
    trainer = Trainer(model, make_task("lm"), ResumableLoader(data, batch_size=4, collate_fn=collate),
                      out_dir=str(tmp_path), max_steps=2, progress=False, tensorboard=False)
    trainer.fit()
    assert model.modes and all(model.modes)
