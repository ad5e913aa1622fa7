/**
 * A payload codec for the codec test: each payload is serialised, XORed and wrapped in a
 * payload marked `binary/compat-xor`, so neither the server nor a reader of the history sees
 * the original bytes.
 */
import { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const CODEC_ENCODING = 'binary/compat-xor';
const KEY = 0x5a;

function xor(bytes: Uint8Array): Uint8Array {
  return bytes.map((b) => b ^ KEY);
}

export class XorCodec implements PayloadCodec {
  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => ({
      metadata: { encoding: new TextEncoder().encode(CODEC_ENCODING) },
      data: xor(temporal.api.common.v1.Payload.encode(p).finish()),
    }));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = p.metadata?.encoding && new TextDecoder().decode(p.metadata.encoding);
      if (encoding !== CODEC_ENCODING) return p;
      return temporal.api.common.v1.Payload.decode(xor(p.data ?? new Uint8Array()));
    });
  }
}
