from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello from Flask!"


@app.post("/echo")
def echo() -> object:
    return jsonify(got=request.get_json(), agent=request.headers.get("User-Agent", ""))
