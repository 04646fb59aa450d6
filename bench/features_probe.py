"""kNN probe of the shipped contrastive features (genlab.load(task="features")): the shape kind of 500 held-out
`shapes` images from their nearest of 2,000 training images, against the same probe on raw pixels.

    python bench/features_probe.py        # seconds; one JSON object on stdout
"""

import json

import torch
import torch.nn.functional as F

import genlab
from genlab.data.image_data import load_shapes


def nearest_label_accuracy(train: torch.Tensor, test: torch.Tensor, train_labels, test_labels) -> float:  # noqa: ANN001
    a, b = F.normalize(train, dim=-1), F.normalize(test, dim=-1)
    return (train_labels[(b @ a.T).argmax(1)] == test_labels).float().mean().item()


def main() -> None:
    model = genlab.load(task="features").float().eval()
    train = load_shapes(32, count=2000, seed=0)
    test = load_shapes(32, count=500, seed=1)

    def embed(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model.trunk(x[i : i + 250])[0] for i in range(0, len(x), 250)])

    with torch.no_grad():
        features = nearest_label_accuracy(embed(train.images), embed(test.images), train.labels, test.labels)
    pixels = nearest_label_accuracy(train.images.flatten(1), test.images.flatten(1), train.labels, test.labels)
    result = {"knn1_shape_accuracy": {"features": round(features, 4), "pixels": round(pixels, 4)}}
    result["chance"] = round(1 / len(train.class_names), 4)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
