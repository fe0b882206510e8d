/* _rowcopy: SQLite rows into PostgreSQL binary COPY tuples, each row hashed on the way.
 *
 * The compiled half of the load stream (``rowcopy.py`` is the Python half). Per row, the
 * Python stream pays for sqlite3 building a tuple, two transposes, psycopg formatting the
 * tuple and one MD5 call: about 2.5 us, most of a 2M-row load. Here a ``Reader`` steps
 * the SQLite statement itself and
 *   - encodes the columns that need no conversion straight from SQLite's values into
 *     their binary COPY fields (no Python object is made for them);
 *   - hands the columns that do need conversion to Python as one list per column, so the
 *     codecs keep converting a whole batch column at a time (``codec.ColumnCodec.column``);
 *   - converts the commonest values of date, timestamp and boolean columns itself (ISO
 *     text, 0/1), calling the column's codec for any other value, and remembers the
 *     converted form of short JSON documents by their bytes (``hybrid_field``);
 *   - ``encode`` then interleaves both into tuples and hashes each row (``row_hash``);
 *   - it counts every column's storage classes on the way (``census``): the table's
 *     profile, which the loader would otherwise scan the table for.
 *
 * A row's hash is the one PostgreSQL computes for a stored row as
 * ``hash_array_extended(ARRAY[record_send(ROW(...))], 0)`` (see ``tuples.row_hash_sql``):
 * the row's binary record form (column count, then each column's type oid and the same
 * length + binary value COPY carries) hashed with PostgreSQL's own 64-bit byte hash (Bob
 * Jenkins' lookup3, public domain). Both sides thus hash the same bytes with the same
 * function, and on the server it costs a third of an MD5 in SQL. The tests check the
 * hashes against PostgreSQL's.
 *
 * Anything it cannot vouch for is left to Python: a converted value of a type it does not
 * encode itself goes through the column's ``dumper`` (psycopg's own binary dumper), and an
 * unconverted column holding a storage class (or a NULL) the plan did not expect raises
 * ``UnexpectedValue``, on which the loader streams the table the Python way. The tests
 * compare both streams byte for byte.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <datetime.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

enum mode { PLAIN, CONVERTED, HYBRID };

enum kind {
    K_BIGINT, K_DOUBLE, K_TEXT, K_BYTEA, K_BOOLEAN, K_DATE, K_TIMESTAMP, K_TIMESTAMPTZ,
    K_JSONB, K_NUMERIC, K_OTHER
};
static const char *KIND_NAMES[] = {
    "bigint", "double", "text", "bytea", "boolean", "date", "timestamp", "timestamptz",
    "jsonb", "numeric", NULL
};
static const char *STORAGE[] = {"", "integer", "real", "text", "blob", "null"};
#define PG_EPOCH_DAYS 10957 /* 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01 */

static PyObject *UnexpectedValue;
static PyTypeObject *decimal_type; /* decimal.Decimal */

/* ---- a growing byte buffer ---- */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static int buf_reserve(Buffer *b, Py_ssize_t more) {
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline void put_be32(char *p, uint32_t v) {
    p[0] = (char)(v >> 24); p[1] = (char)(v >> 16); p[2] = (char)(v >> 8); p[3] = (char)v;
}

static inline void put_be64(char *p, uint64_t v) {
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* One field: 4-byte length, then ``n`` bytes of payload (copied from ``payload`` if given). */
static char *buf_field(Buffer *b, Py_ssize_t n, const void *payload) {
    if (n > INT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "a value over 2 GB cannot be sent in one COPY field");
        return NULL;
    }
    if (buf_reserve(b, 4 + n) < 0) return NULL;
    char *p = b->data + b->len;
    put_be32(p, (uint32_t)n);
    if (payload && n) memcpy(p + 4, payload, n);
    b->len += 4 + n;
    return p + 4;
}

static int buf_null(Buffer *b) {
    if (buf_reserve(b, 4) < 0) return -1;
    put_be32(b->data + b->len, 0xFFFFFFFFu);
    b->len += 4;
    return 0;
}

/* ``n`` bytes appended as they are (a field or a tuple header already encoded). */
static int buf_append(Buffer *b, const void *data, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static int buf_int64(Buffer *b, uint64_t v) {
    char *p = buf_field(b, 8, NULL);
    if (!p) return -1;
    put_be64(p, v);
    return 0;
}

static int buf_int32(Buffer *b, uint32_t v) {
    char *p = buf_field(b, 4, NULL);
    if (!p) return -1;
    put_be32(p, v);
    return 0;
}

static int buf_double(Buffer *b, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return buf_int64(b, bits);
}

/* ---- calendar: days between 1970-01-01 and a proleptic Gregorian date ---- */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t pg_days(PyObject *date) {
    return days_from_civil(PyDateTime_GET_YEAR(date), PyDateTime_GET_MONTH(date),
                           PyDateTime_GET_DAY(date)) - PG_EPOCH_DAYS;
}

static uint64_t pg_micros(PyObject *moment) {
    int64_t seconds = pg_days(moment) * 86400 + PyDateTime_DATE_GET_HOUR(moment) * 3600 +
                      PyDateTime_DATE_GET_MINUTE(moment) * 60 +
                      PyDateTime_DATE_GET_SECOND(moment);
    return (uint64_t)(seconds * 1000000 + PyDateTime_DATE_GET_MICROSECOND(moment));
}

static Py_ssize_t field_size(const char *p) {
    uint32_t n = ((uint32_t)(unsigned char)p[0] << 24) | ((uint32_t)(unsigned char)p[1] << 16) |
                 ((uint32_t)(unsigned char)p[2] << 8) | (uint32_t)(unsigned char)p[3];
    return n == 0xFFFFFFFFu ? 4 : 4 + (Py_ssize_t)n;
}

/* ---- PostgreSQL's hash_bytes_extended (seed 0): lookup3, 64-bit result ---- */
#define ROT(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
#define MIX(a, b, c)                                      \
    do {                                                  \
        a -= c; a ^= ROT(c, 4);  c += b;                  \
        b -= a; b ^= ROT(a, 6);  a += c;                  \
        c -= b; c ^= ROT(b, 8);  b += a;                  \
        a -= c; a ^= ROT(c, 16); c += b;                  \
        b -= a; b ^= ROT(a, 19); a += c;                  \
        c -= b; c ^= ROT(b, 4);  b += a;                  \
    } while (0)
#define FINAL(a, b, c)                                    \
    do {                                                  \
        c ^= b; c -= ROT(b, 14);                          \
        a ^= c; a -= ROT(c, 11);                          \
        b ^= a; b -= ROT(a, 25);                          \
        c ^= b; c -= ROT(b, 16);                          \
        a ^= c; a -= ROT(c, 4);                           \
        b ^= a; b -= ROT(a, 14);                          \
        c ^= b; c -= ROT(b, 24);                          \
    } while (0)

static inline uint32_t le32(const unsigned char *k) {
    return (uint32_t)k[0] | ((uint32_t)k[1] << 8) | ((uint32_t)k[2] << 16) |
           ((uint32_t)k[3] << 24);
}

/* lookup3 fed piece by piece: the same hash as over the pieces joined, for a row whose
 * big values are hashed where SQLite holds them rather than copied into one record form.
 * Full 12-byte blocks are mixed as soon as they are complete, so the blocks are those of
 * the joined bytes wherever the pieces split them; ``total``, the joined length, must be
 * known from the start (it seeds the state). */
typedef struct {
    uint32_t a, b, c;
    unsigned char tail[12]; /* a block not yet complete */
    int ntail;
} Hasher;

static inline void hasher_start(Hasher *h, Py_ssize_t total) {
    h->a = h->b = h->c = 0x9e3779b9 + (uint32_t)total + 3923095;
    h->ntail = 0;
}

static inline void hasher_block(Hasher *h, const unsigned char *k) {
    h->a += le32(k);
    h->b += le32(k + 4);
    h->c += le32(k + 8);
    MIX(h->a, h->b, h->c);
}

static inline void hasher_feed(Hasher *h, const unsigned char *k, Py_ssize_t n) {
    if (h->ntail) {
        Py_ssize_t take = 12 - h->ntail < n ? 12 - h->ntail : n;
        memcpy(h->tail + h->ntail, k, take);
        h->ntail += (int)take;
        k += take;
        n -= take;
        if (h->ntail < 12) return;
        hasher_block(h, h->tail);
        h->ntail = 0;
    }
    for (; n >= 12; k += 12, n -= 12) hasher_block(h, k);
    memcpy(h->tail, k, n);
    h->ntail = (int)n;
}

static inline uint64_t hasher_end(Hasher *h) {
    const unsigned char *k = h->tail;
    uint32_t a = h->a, b = h->b, c = h->c;
    switch (h->ntail) { /* the last 11 bytes; the lowest byte of c is reserved for the length */
    case 11: c += (uint32_t)k[10] << 24; /* fall through */
    case 10: c += (uint32_t)k[9] << 16;  /* fall through */
    case 9:  c += (uint32_t)k[8] << 8;   /* fall through */
    case 8:  b += (uint32_t)k[7] << 24;  /* fall through */
    case 7:  b += (uint32_t)k[6] << 16;  /* fall through */
    case 6:  b += (uint32_t)k[5] << 8;   /* fall through */
    case 5:  b += k[4];                  /* fall through */
    case 4:  a += (uint32_t)k[3] << 24;  /* fall through */
    case 3:  a += (uint32_t)k[2] << 16;  /* fall through */
    case 2:  a += (uint32_t)k[1] << 8;   /* fall through */
    case 1:  a += k[0];
    }
    FINAL(a, b, c);
    return ((uint64_t)b << 32) | c;
}

static uint64_t hash_bytes(const unsigned char *k, Py_ssize_t keylen) {
    Hasher h;
    hasher_start(&h, keylen);
    hasher_feed(&h, k, keylen);
    return hasher_end(&h);
}

/* A value bigger than this is not copied into the batch: it stays in SQLite's memory,
 * ends the batch, is hashed where it lies and sent to COPY in pieces (``Reader_piece``).
 * A batch also ends once its values pass BATCH_BYTES. So a table of huge values costs one
 * copy of a value (SQLite's) beyond the smaller buffers, not five. */
#define BIG_FIELD (1 << 20)
#define PIECE_BYTES (1 << 20)
#define BATCH_BYTES (8 << 20)

/* A big value of the batch's last row, left where SQLite holds it (``data`` NULL for
 * the other columns); ``at``: where its payload belongs in the batch's COPY data. */
typedef struct {
    const char *data;
    Py_ssize_t len, at;
} BigField;

/* The hash of one COPY tuple (``tuple``, ``n`` bytes) of columns of types ``oids``, as
 * hash_array_extended hashes a one-element bytea array (31 * 1 + the element's hash) whose
 * element is the row's record form: the column count, then each column's oid and field.
 * A short row's record form is built in ``scratch`` and hashed at once; a long one, or one
 * with ``big`` fields (per column, or NULL: the tuple holds only their 4-byte length), is
 * fed to the hash piece by piece, never copied. */
static int row_hash(const char *tuple, Py_ssize_t n, const uint32_t *oids, int ncols,
                    const BigField *big, Buffer *scratch, uint64_t *hash) {
    const char *field = tuple + 2, *end = tuple + n;
    Py_ssize_t record = n + 2 + 4 * (Py_ssize_t)ncols; /* the record form's length */
    char word[4];
    put_be32(word, (uint32_t)ncols);
    if (!big && record <= BIG_FIELD) {
        scratch->len = 0;
        if (buf_reserve(scratch, record) < 0) return -1;
        char *out = scratch->data;
        memcpy(out, word, 4);
        out += 4;
        for (int i = 0; i < ncols; i++) {
            if (field + 4 > end) goto malformed;
            Py_ssize_t size = field_size(field);
            if (field + size > end) goto malformed;
            put_be32(out, oids[i]);
            memcpy(out + 4, field, size);
            out += 4 + size;
            field += size;
        }
        if (field != end) goto malformed;
        *hash = 31 + hash_bytes((const unsigned char *)scratch->data, out - scratch->data);
        return 0;
    }
    for (int i = 0; i < ncols; i++) { /* check the tuple; count the big payloads */
        if (field + 4 > end) goto malformed;
        Py_ssize_t size = big && big[i].data ? 4 : field_size(field);
        if (field + size > end) goto malformed;
        record += big && big[i].data ? big[i].len : 0;
        field += size;
    }
    if (field != end) goto malformed;
    Hasher h;
    hasher_start(&h, record);
    hasher_feed(&h, (const unsigned char *)word, 4);
    field = tuple + 2;
    for (int i = 0; i < ncols; i++) {
        Py_ssize_t size = big && big[i].data ? 4 : field_size(field);
        put_be32(word, oids[i]);
        hasher_feed(&h, (const unsigned char *)word, 4);
        hasher_feed(&h, (const unsigned char *)field, size);
        if (big && big[i].data) hasher_feed(&h, (const unsigned char *)big[i].data, big[i].len);
        field += size;
    }
    *hash = 31 + hasher_end(&h);
    return 0;
malformed:
    PyErr_SetString(PyExc_ValueError, "a COPY tuple does not match its column count");
    return -1;
}

/* ---- numeric: a Decimal's text into numeric's binary form, as psycopg's dumper does ---- */
#define NUMERIC_DIGITS 1000 /* longer values go to psycopg's dumper */

/* 1: ``value`` (a Decimal) encoded; 0: not a plain finite value (NaN, Infinity, over-long
 * or out of range), left to the dumper; -1: error. Mirrors psycopg's
 * ``dump_decimal_to_numeric_binary``: base-10000 digits aligned on the decimal point,
 * trailing zero digits dropped, dscale = digits after the point, zero always positive. */
static int numeric_field(Buffer *out, PyObject *value) {
    PyObject *str = PyObject_Str(value);
    if (!str) return -1;
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(str, &n), *end = text ? text + n : NULL;
    if (!text) {
        Py_DECREF(str);
        return -1;
    }
    unsigned char digits[NUMERIC_DIGITS];
    int ndigits = 0, fraction = -1, negative = 0, handled = 0;
    long exponent = 0;
    const char *p = text;
    if (p < end && (*p == '-' || *p == '+')) negative = *p++ == '-';
    for (; p < end; p++) {
        if (*p >= '0' && *p <= '9') {
            if (ndigits == NUMERIC_DIGITS) goto done;
            if (ndigits || *p != '0') digits[ndigits++] = (unsigned char)(*p - '0');
            if (fraction >= 0) fraction++;
        } else if (*p == '.' && fraction < 0) {
            fraction = 0;
        } else if ((*p == 'E' || *p == 'e') && p + 1 < end) {
            char *stop;
            exponent = strtol(p + 1, &stop, 10);
            if (stop != end || exponent > 100000 || exponent < -100000) goto done;
            break;
        } else {
            goto done; /* NaN, Infinity */
        }
    }
    long exp = exponent - (fraction > 0 ? fraction : 0);
    int dscale = exp <= 0 ? (int)-exp : 0;
    if (dscale > 0x3FFF) goto done;
    int nz = ndigits; /* without trailing zeros */
    while (nz > 0 && digits[nz - 1] == 0) nz--;
    char *q;
    if (nz == 0) { /* zero: no digits, positive, at its scale */
        if (!(q = buf_field(out, 8, NULL))) { handled = -1; goto done; }
        memset(q, 0, 8);
        q[6] = (char)(dscale >> 8);
        q[7] = (char)dscale;
        handled = 1;
        goto done;
    }
    long total = ndigits + (exp > 0 ? exp % 4 : 0); /* digits, aligned as psycopg does */
    int skip = 0; /* leading zero digits that align the first one on a base-10000 digit */
    if (((total - dscale) % 4 + 4) % 4) {
        skip = 4 - (int)(((total - dscale) % 4 + 4) % 4);
        total += skip;
    }
    long weight = (total + exp) >= 0 ? (total + exp) / 4 - 1 : -((-(total + exp) + 3) / 4) - 1;
    if (weight > 0x7FFF || weight < -0x8000) goto done;
    int groups = (nz + skip + 3) / 4;
    if (!(q = buf_field(out, 8 + 2 * groups, NULL))) { handled = -1; goto done; }
    uint16_t head[4] = {(uint16_t)groups, (uint16_t)(int16_t)weight,
                        negative ? 0x4000 : 0x0000, (uint16_t)dscale};
    for (int k = 0; k < 4; k++) {
        q[2 * k] = (char)(head[k] >> 8);
        q[2 * k + 1] = (char)head[k];
    }
    q += 8;
    static const int weights[4] = {1000, 100, 10, 1};
    int group = 0, at = skip;
    for (int i = 0; i < nz; i++) {
        group += weights[at] * digits[i];
        if (++at == 4) {
            *q++ = (char)(group >> 8);
            *q++ = (char)group;
            group = at = 0;
        }
    }
    if (at) {
        *q++ = (char)(group >> 8);
        *q++ = (char)group;
    }
    handled = 1;
done:
    Py_DECREF(str);
    return handled;
}

/* ---- short JSON documents already converted, by their source bytes ---- */
#define CACHE_SLOTS 4096    /* per column; direct-mapped: a new document replaces the old */
#define CACHE_MAX_BYTES 1024 /* longer documents are converted every time */

typedef struct {
    uint64_t hash;
    char *raw;      /* the source text */
    Py_ssize_t raw_len;
    char *field;    /* its COPY field: length, then jsonb's binary form */
    Py_ssize_t field_len;
} CacheSlot;

static void cache_free(CacheSlot *cache) {
    if (!cache) return;
    for (int k = 0; k < CACHE_SLOTS; k++) {
        PyMem_Free(cache[k].raw);
        PyMem_Free(cache[k].field);
    }
    PyMem_Free(cache);
}

/* ---- the Reader ---- */
typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    PyObject *source; /* the Source whose db this reads (not closed here), or NULL: own db */
    sqlite3_stmt *stmt;
    int ncols;
    int *kinds;
    int *mode;        /* PLAIN, CONVERTED (handed to Python) or HYBRID (see hybrid_field) */
    int *not_null;    /* 1: a NULL in this (unconverted) column is unexpected */
    long long (*census)[5]; /* per column, values of each storage class (SQLite's codes - 1) */
    uint32_t *oids;   /* each column's type oid, for the row hash */
    PyObject *names;  /* tuple of column names, for messages */
    PyObject *dumpers;  /* tuple: per column, psycopg's dumper as a callable, or None */
    PyObject *codecs;   /* tuple: per HYBRID column, its codec (value -> converted value) */
    CacheSlot **caches; /* per HYBRID jsonb column, converted documents; else NULL */
    Buffer plain;     /* this batch's unconverted fields, row after row */
    Buffer scratch;   /* one row's record form, to hash */
    Py_ssize_t rows;  /* rows in this batch */
    Py_ssize_t taken; /* bytes of this batch's values handed to Python to convert */
    BigField *big;    /* per column: a big value of the batch's last row (see BIG_FIELD) */
    int nbig;         /* how many */
    Buffer out;       /* a batch's COPY data while its big values are being sent in pieces */
    Py_ssize_t sent;  /* how much of ``out`` is sent */
    int next_big;     /* the column whose big value is being sent, */
    Py_ssize_t big_sent; /* and how much of it */
    int done;
} Reader;

/* Finalize the statement; close the db unless a Source lends it. */
static void reader_release(Reader *self) {
    if (self->stmt) sqlite3_finalize(self->stmt);
    if (self->db && !self->source) sqlite3_close(self->db);
    Py_CLEAR(self->source);
    self->stmt = NULL;
    self->db = NULL;
}

static void Reader_dealloc(Reader *self) {
    reader_release(self);
    PyMem_Free(self->kinds);
    PyMem_Free(self->mode);
    if (self->caches)
        for (int i = 0; i < self->ncols; i++) cache_free(self->caches[i]);
    PyMem_Free(self->caches);
    PyMem_Free(self->not_null);
    PyMem_Free(self->census);
    PyMem_Free(self->oids);
    PyMem_Free(self->plain.data);
    PyMem_Free(self->scratch.data);
    PyMem_Free(self->big);
    PyMem_Free(self->out.data);
    Py_XDECREF(self->names);
    Py_XDECREF(self->dumpers);
    Py_XDECREF(self->codecs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int sqlite_failed(Reader *self, const char *what) {
    PyErr_Format(PyExc_RuntimeError, "SQLite %s failed: %s", what,
                 self->db ? sqlite3_errmsg(self->db) : "out of memory");
    return -1;
}

static int kind_of(PyObject *name) {
    const char *text = PyUnicode_AsUTF8(name);
    if (!text) return -1;
    for (int k = 0; KIND_NAMES[k]; k++)
        if (strcmp(text, KIND_NAMES[k]) == 0) return k;
    return K_OTHER;
}

/* The oids of a tuple of ints, as a new array (NULL with an exception set on failure). */
static uint32_t *oid_array(PyObject *oids) {
    Py_ssize_t n = PyTuple_GET_SIZE(oids);
    uint32_t *out = PyMem_Calloc(n ? n : 1, sizeof(uint32_t));
    if (!out) return (uint32_t *)PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long oid = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(oids, i));
        if (PyErr_Occurred()) {
            PyMem_Free(out);
            return NULL;
        }
        out[i] = (uint32_t)oid;
    }
    return out;
}

/* Reader(source or uri, query, names, kinds, oids, modes, not_null, codecs, dumpers, busy_ms) */
/* A stand-in for a collation the schema names but SQLite lacks (the writing application
 * registered it, like Anki's "unicase"): SQLite resolves the collations of the b-tree a
 * statement reads when it prepares it, so a WITHOUT ROWID table keyed by such a column
 * cannot even be scanned without one. The reader's SELECT only scans, so the stand-in
 * (ASCII case-insensitive, as SQLite's NOCASE) decides no order; the Python connections
 * define their own (source.register_stand_ins) for the queries that compare. */
static int stand_in_compare(void *unused, int n1, const void *a, int n2, const void *b) {
    (void)unused;
    int r = sqlite3_strnicmp(a, b, n1 < n2 ? n1 : n2);
    return r ? r : n1 - n2;
}

static void define_stand_in(void *unused, sqlite3 *db, int encoding, const char *name) {
    (void)unused;
    (void)encoding;
    sqlite3_create_collation(db, name, SQLITE_UTF8, NULL, stand_in_compare);
}

/* Open the file at ``uri`` read-only for readers (with the GIL released). NOMUTEX: one
 * thread at a time uses it (it holds the GIL), so SQLite need not lock the connection on
 * every column read (a fifth of the time, measured). */
static int open_db(const char *uri, int busy_ms, sqlite3 **db) {
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                         NULL);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(*db, busy_ms);
    if (rc == SQLITE_OK) rc = sqlite3_collation_needed(*db, NULL, define_stand_in);
    Py_END_ALLOW_THREADS
    return rc;
}

/* ---- the Source: one open file that the readers of one thread share ----
 * Opening the file parses its whole schema at the first statement: on a source of 1,500
 * tables, about 10 ms per table when each reader opened its own. */
typedef struct {
    PyObject_HEAD
    sqlite3 *db;
} Source;

static void Source_dealloc(Source *self) {
    if (self->db) sqlite3_close(self->db);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Source(uri, busy_ms) */
static int Source_init(Source *self, PyObject *args, PyObject *Py_UNUSED(kwds)) {
    const char *uri;
    int busy_ms;
    if (!PyArg_ParseTuple(args, "si", &uri, &busy_ms)) return -1;
    if (self->db) {
        PyErr_SetString(PyExc_RuntimeError, "the source is open already");
        return -1;
    }
    if (open_db(uri, busy_ms, &self->db) != SQLITE_OK) {
        PyErr_Format(PyExc_RuntimeError, "SQLite open failed: %s",
                     self->db ? sqlite3_errmsg(self->db) : "out of memory");
        return -1;
    }
    return 0;
}

static PyTypeObject SourceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "consoleai_etl.core._rowcopy.Source",
    .tp_doc = "Source(uri, busy_ms): a SQLite file open read-only, for Readers to share",
    .tp_basicsize = sizeof(Source),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Source_init,
    .tp_dealloc = (destructor)Source_dealloc,
};

static int Reader_init(Reader *self, PyObject *args, PyObject *Py_UNUSED(kwds)) {
    const char *query;
    PyObject *where, *names, *kinds, *oids, *modes, *not_null, *codecs, *dumpers;
    int busy_ms;
    if (!PyArg_ParseTuple(args, "OsO!O!O!O!O!O!O!i", &where, &query, &PyTuple_Type, &names,
                          &PyTuple_Type, &kinds, &PyTuple_Type, &oids, &PyTuple_Type, &modes,
                          &PyTuple_Type, &not_null, &PyTuple_Type, &codecs, &PyTuple_Type,
                          &dumpers, &busy_ms))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(kinds) != n || PyTuple_GET_SIZE(oids) != n ||
        PyTuple_GET_SIZE(modes) != n || PyTuple_GET_SIZE(not_null) != n ||
        PyTuple_GET_SIZE(codecs) != n || PyTuple_GET_SIZE(dumpers) != n) {
        PyErr_SetString(PyExc_ValueError, "the column tuples differ in length");
        return -1;
    }
    self->ncols = (int)n;
    self->kinds = PyMem_Calloc(n ? n : 1, sizeof(int));
    self->mode = PyMem_Calloc(n ? n : 1, sizeof(int));
    self->not_null = PyMem_Calloc(n ? n : 1, sizeof(int));
    self->census = PyMem_Calloc(n ? n : 1, sizeof(*self->census));
    self->caches = PyMem_Calloc(n ? n : 1, sizeof(CacheSlot *));
    self->big = PyMem_Calloc(n ? n : 1, sizeof(BigField));
    if (!self->kinds || !self->mode || !self->not_null || !self->census || !self->caches ||
        !self->big) {
        PyErr_NoMemory();
        return -1;
    }
    if (!(self->oids = oid_array(oids))) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((self->kinds[i] = kind_of(PyTuple_GET_ITEM(kinds, i))) < 0) return -1;
        long mode = PyLong_AsLong(PyTuple_GET_ITEM(modes, i));
        if (mode == -1 && PyErr_Occurred()) return -1;
        if (mode < PLAIN || mode > HYBRID ||
            (mode == HYBRID && !PyCallable_Check(PyTuple_GET_ITEM(codecs, i)))) {
            PyErr_SetString(PyExc_ValueError, "a mode is unknown, or a hybrid column lacks a codec");
            return -1;
        }
        self->mode[i] = (int)mode;
        if (mode == HYBRID && self->kinds[i] == K_JSONB &&
            !(self->caches[i] = PyMem_Calloc(CACHE_SLOTS, sizeof(CacheSlot)))) {
            PyErr_NoMemory();
            return -1;
        }
        if ((self->not_null[i] = PyObject_IsTrue(PyTuple_GET_ITEM(not_null, i))) < 0)
            return -1;
    }
    Py_INCREF(names);
    self->names = names;
    Py_INCREF(dumpers);
    self->dumpers = dumpers;
    Py_INCREF(codecs);
    self->codecs = codecs;
    int rc;
    if (PyObject_TypeCheck(where, &SourceType)) {
        if (!(self->db = ((Source *)where)->db)) {
            PyErr_SetString(PyExc_ValueError, "the source is not open");
            return -1;
        }
        Py_INCREF(where);
        self->source = where;
        rc = SQLITE_OK;
    } else if (PyUnicode_Check(where)) {
        const char *uri = PyUnicode_AsUTF8(where);
        if (!uri) return -1;
        rc = open_db(uri, busy_ms, &self->db);
    } else {
        PyErr_SetString(PyExc_TypeError, "a Reader reads a Source or a URI");
        return -1;
    }
    if (rc == SQLITE_OK) {
        Py_BEGIN_ALLOW_THREADS
        rc = sqlite3_prepare_v2(self->db, query, -1, &self->stmt, NULL);
        Py_END_ALLOW_THREADS
    }
    if (rc != SQLITE_OK) return sqlite_failed(self, "open");
    if (sqlite3_column_count(self->stmt) != self->ncols) {
        PyErr_SetString(PyExc_ValueError, "the query's columns do not match the names");
        return -1;
    }
    return 0;
}

/* A big value (over BIG_FIELD): only its length goes into the batch; the value stays
 * where SQLite holds it until the next ``read`` (the batch ends with this row). */
static int big_field(Reader *self, int i, const void *data, Py_ssize_t n) {
    if (n > INT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "a value over 2 GB cannot be sent in one COPY field");
        return -1;
    }
    if (buf_reserve(&self->plain, 4) < 0) return -1;
    put_be32(self->plain.data + self->plain.len, (uint32_t)n);
    self->plain.len += 4;
    self->big[i] = (BigField){data, n, 0};
    self->nbig++;
    return 0;
}

/* An unconverted value, straight from SQLite into its binary COPY field. */
static int plain_field(Reader *self, int i) {
    sqlite3_stmt *st = self->stmt;
    int storage = sqlite3_column_type(st, i);
    Buffer *b = &self->plain;
    if (storage == SQLITE_NULL && !self->not_null[i]) return buf_null(b);
    switch (storage == SQLITE_NULL ? K_OTHER : self->kinds[i]) {
    case K_BIGINT:
        if (storage == SQLITE_INTEGER) return buf_int64(b, (uint64_t)sqlite3_column_int64(st, i));
        break;
    case K_DOUBLE:
        if (storage == SQLITE_FLOAT) return buf_double(b, sqlite3_column_double(st, i));
        break;
    case K_TEXT:
        if (storage == SQLITE_TEXT) {
            const unsigned char *text = sqlite3_column_text(st, i);
            if (!text) return sqlite_failed(self, "read");
            Py_ssize_t n = sqlite3_column_bytes(st, i);
            if (n > BIG_FIELD) return big_field(self, i, text, n);
            return buf_field(b, n, text) ? 0 : -1;
        }
        break;
    case K_BYTEA:
        if (storage == SQLITE_BLOB) {
            const void *blob = sqlite3_column_blob(st, i);
            Py_ssize_t n = sqlite3_column_bytes(st, i);
            if (n > BIG_FIELD) {
                if (!blob) return sqlite_failed(self, "read");
                return big_field(self, i, blob, n);
            }
            return buf_field(b, n, blob) ? 0 : -1;
        }
        break;
    }
    PyErr_Format(UnexpectedValue, "column %S holds a %s value, which its plan did not expect",
                 PyTuple_GET_ITEM(self->names, i), STORAGE[storage]);
    return -1;
}

static int hybrid_field(Reader *self, int i);

/* A value for Python to convert: what sqlite3 would return (TEXT decoded strictly). */
static PyObject *python_value(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return PyLong_FromLongLong(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return PyFloat_FromDouble(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
        const char *text = (const char *)sqlite3_column_text(st, i);
        return PyUnicode_DecodeUTF8(text ? text : "", sqlite3_column_bytes(st, i), "strict");
    }
    case SQLITE_BLOB: {
        const char *blob = sqlite3_column_blob(st, i);
        return PyBytes_FromStringAndSize(blob ? blob : "", sqlite3_column_bytes(st, i));
    }
    default:
        Py_RETURN_NONE;
    }
}

/* read(max_rows) -> list of the converted columns' values (one list per such column), or
 * None when the statement is exhausted. The unconverted fields are kept for ``encode``. */
static PyObject *Reader_read(Reader *self, PyObject *arg) {
    Py_ssize_t max_rows = PyLong_AsSsize_t(arg);
    if (max_rows <= 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "max_rows must be positive");
        return NULL;
    }
    if (self->out.data) {
        PyErr_SetString(PyExc_RuntimeError, "read before the last batch's pieces were taken");
        return NULL;
    }
    self->plain.len = 0;
    self->rows = 0;
    self->taken = 0;
    for (int i = 0; self->nbig && i < self->ncols; i++) self->big[i].data = NULL;
    self->nbig = 0;
    if (self->done) Py_RETURN_NONE;
    int nconv = 0;
    for (int i = 0; i < self->ncols; i++) nconv += self->mode[i] == CONVERTED;
    PyObject *columns = PyList_New(nconv);
    if (!columns) return NULL;
    for (int j = 0; j < nconv; j++) {
        PyObject *values = PyList_New(0);
        if (!values) goto fail;
        PyList_SET_ITEM(columns, j, values);
    }
    while (self->rows < max_rows) {
        int rc = sqlite3_step(self->stmt);
        if (rc == SQLITE_DONE) {
            self->done = 1;
            break;
        }
        if (rc != SQLITE_ROW) {
            sqlite_failed(self, "step");
            goto fail;
        }
        for (int i = 0, j = 0; i < self->ncols; i++) {
            int storage = sqlite3_column_type(self->stmt, i);
            self->census[i][storage - 1]++;
            if (self->mode[i] != CONVERTED) {
                if ((self->mode[i] == PLAIN ? plain_field(self, i) : hybrid_field(self, i)) < 0)
                    goto fail;
                continue;
            }
            if (storage == SQLITE_TEXT || storage == SQLITE_BLOB)
                self->taken += sqlite3_column_bytes(self->stmt, i);
            PyObject *value = python_value(self->stmt, i);
            if (!value) goto fail;
            int appended = PyList_Append(PyList_GET_ITEM(columns, j++), value);
            Py_DECREF(value);
            if (appended < 0) goto fail;
        }
        self->rows++;
        if (self->nbig || self->plain.len + self->taken >= BATCH_BYTES) break;
    }
    if (self->rows == 0) {
        Py_DECREF(columns);
        Py_RETURN_NONE;
    }
    return columns;
fail:
    Py_DECREF(columns);
    self->rows = 0;
    return NULL;
}

/* A converted value into its binary COPY field: the common types here, the rest through
 * the column's psycopg dumper (``dumper(value) -> field bytes``, length prefix included). */
static int converted_field(Reader *self, Buffer *out, int i, PyObject *value) {
    if (value == Py_None) return buf_null(out);
    switch (self->kinds[i]) {
    case K_BIGINT:
        if (PyLong_CheckExact(value)) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (!overflow) {
                if (v == -1 && PyErr_Occurred()) return -1;
                return buf_int64(out, (uint64_t)v);
            }
        }
        break;
    case K_DOUBLE:
        if (PyFloat_CheckExact(value)) return buf_double(out, PyFloat_AS_DOUBLE(value));
        break;
    case K_TEXT:
    case K_JSONB:
        if (PyUnicode_CheckExact(value)) {
            Py_ssize_t n;
            const char *text = PyUnicode_AsUTF8AndSize(value, &n);
            if (!text) return -1;
            int jsonb = self->kinds[i] == K_JSONB; /* jsonb's binary form: version 1, text */
            char *p = buf_field(out, n + jsonb, NULL);
            if (!p) return -1;
            if (jsonb) *p++ = 1;
            memcpy(p, text, n);
            return 0;
        }
        break;
    case K_BYTEA:
        if (PyBytes_CheckExact(value))
            return buf_field(out, PyBytes_GET_SIZE(value), PyBytes_AS_STRING(value)) ? 0 : -1;
        break;
    case K_BOOLEAN:
        if (PyBool_Check(value)) {
            char flag = value == Py_True;
            return buf_field(out, 1, &flag) ? 0 : -1;
        }
        break;
    case K_DATE:
        if (PyDate_CheckExact(value)) return buf_int32(out, (uint32_t)pg_days(value));
        break;
    case K_NUMERIC:
        if (Py_IS_TYPE(value, decimal_type)) {
            int handled = numeric_field(out, value);
            if (handled) return handled < 0 ? -1 : 0;
        }
        break;
    case K_TIMESTAMP:
    case K_TIMESTAMPTZ:
        if (PyDateTime_CheckExact(value)) {
            PyObject *zone = PyDateTime_DATE_GET_TZINFO(value);
            if (self->kinds[i] == K_TIMESTAMP ? zone == Py_None : zone == PyDateTime_TimeZone_UTC)
                return buf_int64(out, pg_micros(value));
        }
        break;
    }
    PyObject *dumper = PyTuple_GET_ITEM(self->dumpers, i);
    PyObject *field = PyObject_CallOneArg(dumper, value);
    if (!field) return -1;
    if (!PyBytes_Check(field)) {
        Py_DECREF(field);
        PyErr_SetString(PyExc_TypeError, "a dumper must return the field's bytes");
        return -1;
    }
    int failed = buf_append(out, PyBytes_AS_STRING(field), PyBytes_GET_SIZE(field));
    Py_DECREF(field);
    return failed;
}


/* Two digits at ``p`` as a number, or -1. */
static inline int two_digits(const unsigned char *p) {
    return (p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9')
               ? (p[0] - '0') * 10 + (p[1] - '0') : -1;
}

static int days_in_month(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

/* ISO text as fromisoformat reads its plainest forms: YYYY-MM-DD, and (not for dates)
 * then ' ' or 'T', HH:MM:SS and optionally .fff or .ffffff. 1 with ``*micros`` (since
 * PostgreSQL's epoch; days for a date) set, or 0 for any other text: the codec decides. */
static int iso_moment(const unsigned char *t, int n, int date_only, int64_t *micros) {
    if (date_only ? n != 10 : (n != 19 && n != 23 && n != 26)) return 0;
    int century = two_digits(t), years = two_digits(t + 2), month = two_digits(t + 5),
        day = two_digits(t + 8);
    if (century < 0 || years < 0 || month < 1 || month > 12 || day < 1 || t[4] != '-' ||
        t[7] != '-')
        return 0;
    int year = century * 100 + years;
    if (year < 1 || day > days_in_month(year, month)) return 0;
    int64_t days = days_from_civil(year, (unsigned)month, (unsigned)day) - PG_EPOCH_DAYS;
    if (date_only) {
        *micros = days;
        return 1;
    }
    int hour = two_digits(t + 11), minute = two_digits(t + 14), second = two_digits(t + 17);
    if ((t[10] != ' ' && t[10] != 'T') || t[13] != ':' || t[16] != ':' || hour < 0 ||
        hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59)
        return 0;
    int64_t fraction = 0;
    if (n > 19) {
        if (t[19] != '.') return 0;
        for (int k = 20; k < n; k++) {
            if (t[k] < '0' || t[k] > '9') return 0;
            fraction = fraction * 10 + (t[k] - '0');
        }
        if (n == 23) fraction *= 1000;
    }
    *micros = ((days * 86400 + hour * 3600 + minute * 60 + second) * 1000000) + fraction;
    return 1;
}

/* A HYBRID column's value: ISO dates and timestamps, and 0/1 booleans, straight from
 * SQLite; anything else (NULL included) through the column's codec, then encoded as a
 * converted value. The tests check both ways give the same bytes. */
static int hybrid_field(Reader *self, int i) {
    sqlite3_stmt *st = self->stmt;
    int storage = sqlite3_column_type(st, i), kind = self->kinds[i];
    int64_t v;
    if (storage == SQLITE_TEXT && (kind == K_DATE || kind == K_TIMESTAMP || kind == K_TIMESTAMPTZ)) {
        if (iso_moment(sqlite3_column_text(st, i), sqlite3_column_bytes(st, i), kind == K_DATE, &v)) {
            return kind == K_DATE ? buf_int32(&self->plain, (uint32_t)v)
                                  : buf_int64(&self->plain, (uint64_t)v);
        }
    } else if (storage == SQLITE_INTEGER && kind == K_BOOLEAN) {
        v = sqlite3_column_int64(st, i);
        if (v == 0 || v == 1) {
            char flag = (char)v;
            return buf_field(&self->plain, 1, &flag) ? 0 : -1;
        }
    }
    CacheSlot *slot = NULL;
    const unsigned char *raw = NULL;
    Py_ssize_t raw_len = 0;
    uint64_t hash = 0;
    if (storage == SQLITE_TEXT && self->caches[i]) {
        raw = sqlite3_column_text(st, i);
        raw_len = sqlite3_column_bytes(st, i);
        if (raw && raw_len <= CACHE_MAX_BYTES) {
            hash = hash_bytes(raw, raw_len);
            slot = &self->caches[i][hash & (CACHE_SLOTS - 1)];
            if (slot->field && slot->hash == hash && slot->raw_len == raw_len &&
                memcmp(slot->raw, raw, raw_len) == 0) {
                return buf_append(&self->plain, slot->field, slot->field_len);
            }
        }
    }
    Py_ssize_t start = self->plain.len;
    PyObject *value = python_value(st, i);
    if (!value) return -1;
    PyObject *converted = PyObject_CallOneArg(PyTuple_GET_ITEM(self->codecs, i), value);
    Py_DECREF(value);
    if (!converted) return -1;
    int failed = converted_field(self, &self->plain, i, converted);
    Py_DECREF(converted);
    if (!failed && slot) { /* remember this document's field (replacing the slot's) */
        Py_ssize_t field_len = self->plain.len - start;
        char *raw_copy = PyMem_Malloc(raw_len ? raw_len : 1), *field = PyMem_Malloc(field_len);
        if (!raw_copy || !field) {
            PyMem_Free(raw_copy);
            PyMem_Free(field);
            return 0; /* no room to remember it: it is converted again next time */
        }
        memcpy(raw_copy, raw, raw_len);
        memcpy(field, self->plain.data + start, field_len);
        PyMem_Free(slot->raw);
        PyMem_Free(slot->field);
        *slot = (CacheSlot){hash, raw_copy, raw_len, field, field_len};
    }
    return failed;
}

/* Row ``r`` of the batch into ``out``; ``plain`` advances past its unconverted fields.
 * ``big``: the row may hold big values (the batch's last row), whose payloads are left
 * out and their places noted (constant 0 for the other rows: the test is compiled away). */
static inline int encode_row(Reader *self, Buffer *out, PyObject *columns, Py_ssize_t r,
                             const char **plain, int big) {
    const char count[2] = {(char)(self->ncols >> 8), (char)self->ncols};
    if (buf_append(out, count, 2) < 0) return -1;
    for (int i = 0, j = 0; i < self->ncols; i++) {
        if (self->mode[i] == CONVERTED) {
            PyObject *value = PyList_GET_ITEM(PyList_GET_ITEM(columns, j++), r);
            if (converted_field(self, out, i, value) < 0) return -1;
            continue;
        }
        Py_ssize_t n = big && self->big[i].data ? 4 : field_size(*plain);
        if (buf_append(out, *plain, n) < 0) return -1;
        if (big && self->big[i].data) self->big[i].at = out->len;
        *plain += n;
    }
    return 0;
}

/* encode(columns) -> (COPY data, sum of the row hashes mod 2**64, seconds spent hashing):
 * the batch just read, with ``columns`` the converted values (one list per converted column,
 * as ``read`` returned them, each converted). If the batch's last row holds big values,
 * the data stops before the first one's payload: ``piece`` gives the rest. */
static PyObject *Reader_encode(Reader *self, PyObject *columns) {
    int nconv = 0;
    for (int i = 0; i < self->ncols; i++) nconv += self->mode[i] == CONVERTED;
    if (!PyList_Check(columns) || PyList_GET_SIZE(columns) != nconv) {
        PyErr_SetString(PyExc_ValueError, "encode needs one list per converted column");
        return NULL;
    }
    for (int j = 0; j < nconv; j++) {
        PyObject *values = PyList_GET_ITEM(columns, j);
        if (!PyList_Check(values) || PyList_GET_SIZE(values) != self->rows) {
            PyErr_SetString(PyExc_ValueError, "a converted column is not the batch's length");
            return NULL;
        }
    }
    if (self->out.data) {
        PyErr_SetString(PyExc_RuntimeError, "encode before the last batch's pieces were taken");
        return NULL;
    }
    Buffer out = {0};
    Py_ssize_t *ends = PyMem_Malloc((self->rows ? self->rows : 1) * sizeof(Py_ssize_t));
    if (!ends) return PyErr_NoMemory();
    const char *plain = self->plain.data;
    Py_ssize_t last = self->nbig ? self->rows - 1 : self->rows; /* rows without big values */
    for (Py_ssize_t r = 0; r < last; r++) {
        if (encode_row(self, &out, columns, r, &plain, 0) < 0) goto fail;
        ends[r] = out.len;
    }
    if (last < self->rows) {
        if (encode_row(self, &out, columns, last, &plain, 1) < 0) goto fail;
        ends[last] = out.len;
    }
    struct timespec started, finished;
    clock_gettime(CLOCK_MONOTONIC, &started);
    uint64_t total = 0, hash;
    for (Py_ssize_t r = 0, start = 0; r < self->rows; start = ends[r++]) {
        if (row_hash(out.data + start, ends[r] - start, self->oids, self->ncols,
                     r < last ? NULL : self->big, &self->scratch, &hash) < 0)
            goto fail;
        total += hash; /* two's complement: the signed sum, mod 2**64 */
    }
    clock_gettime(CLOCK_MONOTONIC, &finished);
    double seconds = (double)(finished.tv_sec - started.tv_sec) +
                     (double)(finished.tv_nsec - started.tv_nsec) / 1e9;
    PyMem_Free(ends);
    self->sent = out.len;
    for (int i = 0; self->nbig && i < self->ncols; i++) {
        if (self->big[i].data && self->big[i].at < self->sent) self->sent = self->big[i].at;
    }
    PyObject *data = PyBytes_FromStringAndSize(out.data ? out.data : "", self->sent);
    if (self->nbig && data) {
        self->out = out; /* kept for ``piece`` */
        self->next_big = 0;
        self->big_sent = 0;
    } else {
        PyMem_Free(out.data);
    }
    if (!data) return NULL;
    return Py_BuildValue("(NKd)", data, (unsigned long long)total, seconds);
fail:
    PyMem_Free(ends);
    PyMem_Free(out.data);
    return NULL;
}

/* piece() -> the next piece of the batch's COPY data after what ``encode`` returned (at
 * most PIECE_BYTES of a big value, straight from SQLite's memory, or the data between
 * big values), or None once it is all given. Called until None before the next ``read``. */
static PyObject *Reader_piece(Reader *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->out.data) Py_RETURN_NONE;
    int i = self->next_big;
    while (i < self->ncols && !self->big[i].data) i++;
    self->next_big = i;
    Py_ssize_t upto = i < self->ncols ? self->big[i].at : self->out.len;
    if (self->sent < upto) {
        PyObject *data = PyBytes_FromStringAndSize(self->out.data + self->sent, upto - self->sent);
        if (data) self->sent = upto;
        return data;
    }
    if (i == self->ncols) {
        PyMem_Free(self->out.data);
        self->out = (Buffer){0};
        Py_RETURN_NONE;
    }
    BigField *big = &self->big[i];
    Py_ssize_t n = big->len - self->big_sent;
    if (n > PIECE_BYTES) n = PIECE_BYTES;
    PyObject *data = PyBytes_FromStringAndSize(big->data + self->big_sent, n);
    if (data && (self->big_sent += n) == big->len) {
        self->next_big = i + 1;
        self->big_sent = 0;
    }
    return data;
}

/* census() -> per column, the count of values of each storage class read so far:
 * (integer, real, text, blob, null), as ``typeof`` would count them. */
static PyObject *Reader_census(Reader *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *columns = PyTuple_New(self->ncols);
    if (!columns) return NULL;
    for (int i = 0; i < self->ncols; i++) {
        long long *c = self->census[i];
        PyObject *counts = Py_BuildValue("(LLLLL)", c[0], c[1], c[2], c[3], c[4]);
        if (!counts) {
            Py_DECREF(columns);
            return NULL;
        }
        PyTuple_SET_ITEM(columns, i, counts);
    }
    return columns;
}

static PyObject *Reader_close(Reader *self, PyObject *Py_UNUSED(ignored)) {
    reader_release(self);
    self->done = 1;
    Py_RETURN_NONE;
}

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)Reader_read, METH_O,
     "read(max_rows) -> the converted columns' values of the next batch, or None at the end"},
    {"encode", (PyCFunction)Reader_encode, METH_O,
     "encode(converted columns) -> (COPY tuples, sum of row hashes mod 2**64, hash seconds)"},
    {"piece", (PyCFunction)Reader_piece, METH_NOARGS,
     "piece() -> the next piece of a batch with big values (after encode's data), or None"},
    {"census", (PyCFunction)Reader_census, METH_NOARGS,
     "census() -> per column (integer, real, text, blob, null) counts of the values read"},
    {"close", (PyCFunction)Reader_close, METH_NOARGS, "finalize the statement, close SQLite"},
    {NULL}
};

static PyMemberDef Reader_members[] = {
    {"rows", T_PYSSIZET, offsetof(Reader, rows), READONLY, "rows in the batch just read"},
    {NULL}
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "consoleai_etl.core._rowcopy.Reader",
    .tp_doc = "Reader(source or uri, query, names, kinds, oids, modes, not_null, codecs, dumpers, "
              "busy_ms): a SQLite query's rows as binary COPY tuples",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
    .tp_members = Reader_members,
};

/* row_hashes(data, ends, oids) -> tuple of each row's hash (signed, as PostgreSQL shows
 * it), for rows encoded by psycopg: the tuple of row ``r`` ends at ``ends[r]`` in ``data``. */
static PyObject *row_hashes(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data;
    PyObject *ends, *oids;
    if (!PyArg_ParseTuple(args, "y*O!O!", &data, &PyList_Type, &ends, &PyTuple_Type, &oids))
        return NULL;
    Buffer scratch = {0};
    PyObject *hashes = NULL;
    uint32_t *oid = oid_array(oids);
    if (!oid) goto done;
    Py_ssize_t rows = PyList_GET_SIZE(ends), start = 0;
    if (!(hashes = PyTuple_New(rows))) goto done;
    for (Py_ssize_t r = 0; r < rows; r++) {
        Py_ssize_t end = PyLong_AsSsize_t(PyList_GET_ITEM(ends, r));
        uint64_t hash;
        if ((end < start || end > data.len) && !PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "row ends out of order or past the data");
        if (PyErr_Occurred() ||
            row_hash((const char *)data.buf + start, end - start, oid,
                     (int)PyTuple_GET_SIZE(oids), NULL, &scratch, &hash) < 0) {
            Py_CLEAR(hashes);
            goto done;
        }
        PyObject *value = PyLong_FromLongLong((long long)hash);
        if (!value) {
            Py_CLEAR(hashes);
            goto done;
        }
        PyTuple_SET_ITEM(hashes, r, value);
        start = end;
    }
done:
    PyMem_Free(oid);
    PyMem_Free(scratch.data);
    PyBuffer_Release(&data);
    return hashes;
}

static PyMethodDef module_methods[] = {
    {"row_hashes", row_hashes, METH_VARARGS,
     "row_hashes(data, ends, oids) -> each row's hash, as PostgreSQL computes it"},
    {NULL}
};

static struct PyModuleDef rowcopy_module = {
    PyModuleDef_HEAD_INIT, "_rowcopy", "SQLite rows into hashed binary COPY tuples.", -1,
    module_methods
};

PyMODINIT_FUNC PyInit__rowcopy(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI || PyType_Ready(&ReaderType) < 0 || PyType_Ready(&SourceType) < 0)
        return NULL;
    PyObject *decimal = PyImport_ImportModule("decimal");
    if (!decimal) return NULL;
    decimal_type = (PyTypeObject *)PyObject_GetAttrString(decimal, "Decimal");
    Py_DECREF(decimal);
    if (!decimal_type) return NULL;
    PyObject *module = PyModule_Create(&rowcopy_module);
    if (!module) return NULL;
    UnexpectedValue = PyErr_NewException("consoleai_etl.core._rowcopy.UnexpectedValue",
                                         PyExc_ValueError, NULL);
    if (PyModule_AddObjectRef(module, "UnexpectedValue", UnexpectedValue) < 0 ||
        PyModule_AddObjectRef(module, "Reader", (PyObject *)&ReaderType) < 0 ||
        PyModule_AddObjectRef(module, "Source", (PyObject *)&SourceType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
