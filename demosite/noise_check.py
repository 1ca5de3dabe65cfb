"""How close a plain model gets to the demo data's noise floor: ``python -m demosite.noise_check``.

Fits scikit-learn's HistGradientBoostingRegressor with default settings on the clean listings
(80/20 split) and prints its test RMSE next to ``noise_sigma`` and next to the RMSE of the true
price function on the same test rows (the best any model can do on that sample).
"""

from __future__ import annotations

import argparse
import math

from demosite.catalogue import Catalogue

FEATURES = ("make", "model", "year", "mileage", "fuel", "transmission", "engine_size", "body")
CATEGORIES = ("make", "model", "fuel", "transmission", "body")


def check(listings: int, seed: int) -> dict[str, float]:
    """Test RMSE of the model and of the true price function, and the noise sigma."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import train_test_split

    catalogue = Catalogue.generate(listings=listings, seed=seed)
    frame = pd.DataFrame(catalogue.listings)
    features = frame[list(FEATURES)].astype({name: "category" for name in CATEGORIES})
    train_x, test_x, train_y, test_y = train_test_split(
        features, frame["price"], test_size=0.2, random_state=0
    )
    model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
    predicted = model.fit(train_x, train_y).predict(test_x)
    truth = frame.loc[test_y.index, "listing_id"].map(catalogue.true_price)
    return {
        "noise_sigma": catalogue.noise_sigma,
        "model_rmse": math.sqrt(float(((predicted - test_y) ** 2).mean())),
        "oracle_rmse": math.sqrt(float(((truth - test_y) ** 2).mean())),
        "train_rows": float(len(train_y)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m demosite.noise_check", description=__doc__)
    parser.add_argument("--listings", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    args = parser.parse_args()
    for seed in args.seeds:
        result = check(args.listings, seed)
        print(
            f"seed {seed}: {result['train_rows']:.0f} train rows, "
            f"HGBR test RMSE {result['model_rmse']:.0f}, noise sigma {result['noise_sigma']:.0f} "
            f"(ratio {result['model_rmse'] / result['noise_sigma']:.3f}), "
            f"true-price RMSE on the same rows {result['oracle_rmse']:.0f} "
            f"(ratio {result['model_rmse'] / result['oracle_rmse']:.3f})"
        )


if __name__ == "__main__":
    main()
