import falcon
import numpy as np


class Stats:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        values = np.asarray(req.get_media(), dtype=float)
        resp.media = {"mean": float(values.mean()), "std": float(values.std()), "numpy": np.__version__}


app = falcon.App()
app.add_route("/stats", Stats())
