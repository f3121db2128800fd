"""An independent WXBizMsgCrypt peer for kefu's interop tests, built on wechatpy (PyPI).

Reads one JSON request per stdin line and writes one JSON answer per stdout line:
  {"op": "encrypt", "token", "key", "id", "msg", "nonce", "timestamp"} -> {"xml": envelope}
  {"op": "decrypt", "token", "key", "id", "xml", "signature", "timestamp", "nonce"} -> {"msg": text}
  {"op": "verify_url", "token", "key", "id", "signature", "timestamp", "nonce", "echostr"} -> {"msg": text}
Errors come back as {"error": "<exception class>"}.
"""
import json
import sys

from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as EnterpriseCrypto


def handle(req):
    op = req["op"]
    crypto = WeChatCrypto(req["token"], req["key"], req["id"])
    if op == "encrypt":
        return {"xml": crypto.encrypt_message(req["msg"], req["nonce"], req["timestamp"])}
    if op == "decrypt":
        msg = crypto.decrypt_message(req["xml"], req["signature"], req["timestamp"], req["nonce"])
        return {"msg": msg.decode("utf-8") if isinstance(msg, bytes) else msg}
    if op == "verify_url":
        ent = EnterpriseCrypto(req["token"], req["key"], req["id"])
        msg = ent.check_signature(req["signature"], req["timestamp"], req["nonce"], req["echostr"])
        return {"msg": msg.decode("utf-8") if isinstance(msg, bytes) else msg}
    return {"error": "unknown op " + op}


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        out = handle(json.loads(line))
    except Exception as exc:  # report, do not die: the test asserts on it
        out = {"error": type(exc).__name__}
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    sys.stdout.flush()
