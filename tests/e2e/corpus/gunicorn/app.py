from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return f"served by {request.environ['SERVER_SOFTWARE']}"
