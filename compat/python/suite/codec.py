"""A payload codec that zlib-compresses every payload (as a user's encryption or compression
codec would), so the server only ever stores opaque `binary/zlib` payloads."""

from __future__ import annotations

import zlib
from typing import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/zlib"


class ZlibCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={"encoding": ENCODING}, data=zlib.compress(p.SerializeToString()))
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                decoded.append(p)
                continue
            inner = Payload()
            inner.ParseFromString(zlib.decompress(p.data))
            decoded.append(inner)
        return decoded
