"""A plain handler function: Roost's runner wraps it; no web framework needed."""


def handler(request):
    name = request.query.get("name", "world")
    if request.path == "/json":
        return {"hello": name, "method": request.method}
    if request.path == "/teapot":
        return ("I'm a teapot\n", 418, {"X-Kind": "teapot"})
    return f"Hello, {name}!\n"
