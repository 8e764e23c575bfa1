"""A Flask app served by Roost's runner (WSGI)."""

import os

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return f"Hello from Flask! ({os.environ.get('GREETING', 'hi')})\n"


@app.get("/json")
def as_json():
    return jsonify(app="flask-hello", path=request.path, script_root=request.script_root)


@app.post("/echo")
def echo():
    return request.get_data()
