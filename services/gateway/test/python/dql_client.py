"""A DQL client not written in TypeScript: grpcio for the transport, protoc for the messages.

Usage: dql_client.py ADDRESS PROTO_ROOT TOKEN RESTRICTED_TOKEN
TOKEN may do everything; RESTRICTED_TOKEN may write only cars whose _id.region is '1'.
Messages are encoded and decoded with `protoc --encode/--decode` (text format) from
PROTO_ROOT/lattice/v1/gateway.proto, so neither side shares code with the server.
Prints one JSON object per line: {"step": ..., "text": <decoded message>}.
"""
import json
import subprocess
import sys

import grpc

ADDRESS, ROOT, TOKEN, RESTRICTED = sys.argv[1:5]
AUTH = [("authorization", "Bearer " + TOKEN)]
PROTO = "lattice/v1/gateway.proto"


def encode(message_type, text):
    return subprocess.run(
        ["protoc", "-I", ROOT, "--encode=lattice.v1." + message_type, PROTO],
        input=text.encode(), capture_output=True, check=True).stdout


def decode(message_type, data):
    return subprocess.run(
        ["protoc", "-I", ROOT, "--decode=lattice.v1." + message_type, PROTO],
        input=data, capture_output=True, check=True).stdout.decode()


def emit(step, text):
    print(json.dumps({"step": step, "text": text}), flush=True)


identity = lambda b: b
channel = grpc.insecure_channel(ADDRESS)
execute = channel.unary_unary("/lattice.v1.DqlService/Execute",
                              request_serializer=identity, response_deserializer=identity)
observe = channel.unary_stream("/lattice.v1.DqlService/Observe",
                               request_serializer=identity, response_deserializer=identity)

reply = execute(encode("ExecuteRequest",
                       "statement: \"INSERT INTO cars DOCUMENTS ({'_id': 'py1', 'make': 'Volvo'})\""),
                timeout=10, metadata=AUTH)
emit("execute", decode("ExecuteResponse", reply))

try:
    execute(encode("ExecuteRequest", 'statement: "SELEC nonsense"'), timeout=10, metadata=AUTH)
    emit("error", "no error")
except grpc.RpcError as e:
    codes = [v for k, v in e.trailing_metadata() if k == "lattice-error-code"]
    emit("error", "%s %s" % (e.code().name, codes[0] if codes else "-"))


def failure(step, token, statement):
    """Runs a statement that must fail; emits its status and our error code."""
    try:
        execute(encode("ExecuteRequest", "statement: \"%s\"" % statement), timeout=10,
                metadata=[("authorization", "Bearer " + token)] if token else None)
        emit(step, "no error")
    except grpc.RpcError as e:
        codes = [v for k, v in e.trailing_metadata() if k == "lattice-error-code"]
        emit(step, "%s %s" % (e.code().name, codes[0] if codes else "-"))


failure("no-token", None, "SELECT * FROM cars")
failure("denied", RESTRICTED,
        "INSERT INTO cars DOCUMENTS ({'_id': {'region': '2'}, 'make': 'Kia'})")

stream = observe(encode("ObserveRequest", 'statement: "SELECT * FROM cars ORDER BY _id"'),
                 timeout=20, metadata=AUTH)
emit("initial", decode("ObserveResponse", next(stream)))
emit("ready", "")
emit("changes", decode("ObserveResponse", next(stream)))
stream.cancel()
channel.close()
