/**
 * Listing cursors, opaque and authenticated. A cursor names where the next page starts (a
 * position in the listing's order, such as a rowid) and carries an HMAC-SHA256 tag over
 * that position and the listing it belongs to, under the database's own key (the setting
 * `cursor_key`). A client can hand back only a cursor this database gave out for this
 * listing: an edited, made-up or foreign one is refused before its position is read, so
 * the store never acts on a position a client chose. Backend-neutral: any store whose
 * positions are non-negative integers uses the same codec.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The settings key under which the database keeps the cursor key (hex). */
export const CURSOR_KEY_SETTING = 'cursor_key';

const VERSION = 1;
const POSITION_BYTES = 8;
/** 128 bits of tag: forging one is a 2^-128 guess per request. */
const TAG_BYTES = 16;
const CURSOR_BYTES = 1 + POSITION_BYTES + TAG_BYTES;
/** base64url without padding of CURSOR_BYTES bytes. */
const CURSOR_CHARS = Math.ceil((CURSOR_BYTES * 8) / 6);
const MIN_KEY_BYTES = 32;
/** Separates this use of the key from any other use it might get later. */
const DOMAIN = Buffer.from('imprint listing cursor\0');

/** Encodes and checks listing cursors under one key. */
export class CursorCodec {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length < MIN_KEY_BYTES) throw new Error(`cursor key must be at least ${MIN_KEY_BYTES} bytes`);
    this.key = Buffer.from(key);
  }

  /** The codec for a key stored as hex (the settings value); throws when it is missing or short. */
  static fromHex(hex: string | undefined): CursorCodec {
    if (hex === undefined || !/^(?:[0-9a-f]{2})+$/.test(hex)) {
      throw new Error(`the database has no valid ${CURSOR_KEY_SETTING} setting; run imprint migrate`);
    }
    return new CursorCodec(Buffer.from(hex, 'hex'));
  }

  /** The cursor for `position` in the listing named `listing` (e.g. a table name). */
  encode(listing: string, position: number): string {
    if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`cursor position ${position} is not a non-negative safe integer`);
    const body = Buffer.alloc(1 + POSITION_BYTES);
    body.writeUInt8(VERSION, 0);
    body.writeBigUInt64BE(BigInt(position), 1);
    return Buffer.concat([body, this.tag(listing, body)]).toString('base64url');
  }

  /** The position a cursor of `listing` names; undefined when this key did not make it for that listing. */
  decode(listing: string, cursor: string): number | undefined {
    if (cursor.length !== CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
    const bytes = Buffer.from(cursor, 'base64url');
    // One spelling per cursor: the unused low bits of the last character must be zero.
    if (bytes.length !== CURSOR_BYTES || bytes.toString('base64url') !== cursor) return undefined;
    const body = bytes.subarray(0, 1 + POSITION_BYTES);
    if (!timingSafeEqual(bytes.subarray(1 + POSITION_BYTES), this.tag(listing, body))) return undefined;
    if (body.readUInt8(0) !== VERSION) return undefined;
    const position = body.readBigUInt64BE(1);
    return position <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(position) : undefined;
  }

  private tag(listing: string, body: Buffer): Buffer {
    return createHmac('sha256', this.key)
      .update(DOMAIN)
      .update(`${listing}\0`)
      .update(body)
      .digest()
      .subarray(0, TAG_BYTES);
  }
}
