"""A tiny app that imports numpy and pandas: the heavy build of bench/deploy.py's build figures."""

import numpy as np
import pandas as pd


def handler(request):
    frame = pd.DataFrame({"n": np.arange(1, 11)})
    return f"numpy {np.__version__}, pandas {pd.__version__}: sum {int(frame['n'].sum())}\n"
