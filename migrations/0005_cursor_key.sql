-- imprint schema 5: the key that authenticates listing cursors. A cursor carries an
-- HMAC-SHA256 tag under this key (src/store/cursor.ts), so a client can hand back only a
-- cursor this database gave out. It lives in the database, not in one process, so every
-- process serving the same database (workers, the CLI) accepts the others' cursors.

INSERT INTO settings (key, value) VALUES ('cursor_key', lower(hex(randomblob(32))));
