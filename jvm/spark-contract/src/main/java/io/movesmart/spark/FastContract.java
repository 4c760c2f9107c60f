package io.movesmart.spark;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.DateTimeException;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;

/**
 * The fast path of the Move Smart data contract: one Jackson pass over a Kafka value.
 *
 * <p>Returns the record's typed values when the payload is plainly valid, and null for
 * anything else, which the streaming job then judges with the reference itself
 * (contract.validate on the driver). So this class never explains a rejection; it only
 * has to be certain when it accepts (a Hypothesis fuzz test holds it to that). Whenever a
 * payload is in any way unusual (a duplicate key, a nested value in an unknown field, a
 * timestamp outside the common ISO-8601 shape, a surrogate character, a BOM, a NUL byte
 * where Jackson would guess UTF-16/32, a huge integer) it answers null and leaves the
 * verdict to the reference.
 *
 * <p>The record comes as a JSON spec built by validation/fast_contract.py from schemas.py, so no
 * schema fact lives here. Output struct: fields in schema order; string as String,
 * timestamp as epoch microseconds (Long), double as Double, int as Integer, location as
 * a struct (latitude, longitude).
 *
 * <p>The second argument is the record's ingestion time, its Kafka timestamp in epoch
 * microseconds. With an "eventTime" rule in the spec (contract.EventTimeRule: the start
 * date and the largest skew ahead of ingestion), an event time outside
 * [notBeforeMicros, ingestion + maxAheadMicros] is not plainly valid either: null, and the
 * reference quarantines it with its reason.
 */
public final class FastContract implements UDF2<byte[], Long, Row> {
  private static final long serialVersionUID = 1L;

  static final int STRING = 0, TIMESTAMP = 1, DOUBLE = 2, INT = 3, LOCATION = 4;
  private static final double TWO_53 = 9007199254740992.0;

  private final String[] names;
  private final int[] types;
  private final boolean[] required;
  private final double[] min;
  private final double[] max;
  private final double latMin, latMax, lonMin, lonMax;
  private final int eventField; // -1: no event-time rule
  private final long notBeforeMicros, maxAheadMicros;
  private final Map<String, Integer> index = new HashMap<>();
  private transient JsonFactory factory;

  public FastContract(String spec) throws java.io.IOException {
    JsonNode root = new ObjectMapper().readTree(spec);
    JsonNode fields = root.get("fields");
    int n = fields.size();
    if (n > 63) throw new IllegalArgumentException("at most 63 fields");
    names = new String[n];
    types = new int[n];
    required = new boolean[n];
    min = new double[n];
    max = new double[n];
    for (int i = 0; i < n; i++) {
      JsonNode f = fields.get(i);
      names[i] = f.get("name").asText();
      types[i] = typeCode(f.get("type").asText());
      required[i] = f.get("required").asBoolean();
      min[i] = bound(f.get("minimum"), Double.NEGATIVE_INFINITY);
      max[i] = bound(f.get("maximum"), Double.POSITIVE_INFINITY);
      index.put(names[i], i);
    }
    JsonNode loc = root.get("location");
    latMin = bound(loc.get("latitude").get("minimum"), Double.NEGATIVE_INFINITY);
    latMax = bound(loc.get("latitude").get("maximum"), Double.POSITIVE_INFINITY);
    lonMin = bound(loc.get("longitude").get("minimum"), Double.NEGATIVE_INFINITY);
    lonMax = bound(loc.get("longitude").get("maximum"), Double.POSITIVE_INFINITY);
    JsonNode rule = root.get("eventTime");
    if (rule == null || rule.isNull()) {
      eventField = -1;
      notBeforeMicros = Long.MIN_VALUE;
      maxAheadMicros = Long.MAX_VALUE;
    } else {
      Integer f = index.get(rule.get("field").asText());
      if (f == null || types[f] != TIMESTAMP) {
        throw new IllegalArgumentException("eventTime.field must name a timestamp field");
      }
      eventField = f;
      notBeforeMicros = rule.get("notBeforeMicros").asLong();
      maxAheadMicros = rule.get("maxAheadMicros").asLong();
    }
  }

  private static int typeCode(String t) {
    switch (t) {
      case "string": return STRING;
      case "timestamp": return TIMESTAMP;
      case "double": return DOUBLE;
      case "int": return INT;
      case "location": return LOCATION;
      default: throw new IllegalArgumentException("unknown field type " + t);
    }
  }

  private static double bound(JsonNode v, double none) {
    return v == null || v.isNull() ? none : v.asDouble();
  }

  @Override
  public Row call(byte[] value, Long ingestedMicros) {
    if (value == null || value.length == 0) return null;
    // Python's json.loads rejects a UTF-8 BOM; Jackson would skip it
    if (value.length >= 3
        && (value[0] & 0xff) == 0xEF
        && (value[1] & 0xff) == 0xBB
        && (value[2] & 0xff) == 0xBF) {
      return null;
    }
    // Jackson guesses UTF-16/32 from zero bytes among the first four; the contract is
    // UTF-8 only, and a NUL byte is never valid JSON text outside an escape
    for (int i = 0; i < Math.min(4, value.length); i++) {
      if (value[i] == 0) return null;
    }
    if (factory == null) factory = new JsonFactory();
    Row row;
    try (JsonParser p = factory.createParser(value)) {
      row = decide(p);
    } catch (Exception e) { // not JSON, or JSON Jackson rejects: the reference explains
      return null;
    }
    return row != null && inTime(row, ingestedMicros) ? row : null;
  }

  /** The event-time rule, as contract.EventTimeRule.check: both bounds inclusive. */
  private boolean inTime(Row row, Long ingestedMicros) {
    if (eventField < 0) return true;
    if (ingestedMicros == null) return false;
    long event = row.getLong(eventField);
    if (event < notBeforeMicros) return false;
    long latest;
    try {
      latest = Math.addExact(ingestedMicros, maxAheadMicros);
    } catch (ArithmeticException e) { // beyond any timestamp: no upper bound (as the reference)
      return true;
    }
    return event <= latest;
  }

  private Row decide(JsonParser p) throws java.io.IOException {
    if (p.nextToken() != JsonToken.START_OBJECT) return null;
    Object[] out = new Object[names.length];
    long seen = 0;
    JsonToken t;
    while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
      Integer idx = index.get(p.currentName());
      JsonToken v = p.nextToken();
      if (idx == null) {
        if (v.isStructStart()) return null; // unknown field: only scalars are skipped here
        continue;
      }
      int i = idx;
      if ((seen & (1L << i)) != 0) return null; // duplicate key (Python keeps the last)
      seen |= 1L << i;
      if (v == JsonToken.VALUE_NULL) {
        if (required[i]) return null;
        continue;
      }
      Object x;
      switch (types[i]) {
        case STRING:
          if (v != JsonToken.VALUE_STRING) return null;
          String s = p.getText();
          if (hasSurrogate(s)) return null;
          x = s;
          break;
        case TIMESTAMP:
          if (v != JsonToken.VALUE_STRING) return null;
          long micros = isoMicros(p.getText());
          if (micros == Long.MIN_VALUE) return null;
          x = micros;
          break;
        case DOUBLE: {
          double d = number(p, v);
          if (Double.isNaN(d) || d < min[i] || d > max[i]) return null;
          x = d;
          break;
        }
        case INT: {
          double d = number(p, v);
          if (Double.isNaN(d) || d != Math.rint(d) || d < min[i] || d > max[i]) return null;
          if (d < Integer.MIN_VALUE || d > Integer.MAX_VALUE) return null;
          x = (int) d;
          break;
        }
        case LOCATION:
          x = location(p, v);
          if (x == null) return null;
          break;
        default:
          return null;
      }
      out[i] = x;
    }
    if (t != JsonToken.END_OBJECT || p.nextToken() != null) return null; // trailing content
    for (int i = 0; i < names.length; i++) {
      if (required[i] && out[i] == null) return null;
    }
    return RowFactory.create(out);
  }

  /** A finite JSON number as a double, or NaN when it is not one (or too big to be exact). */
  private static double number(JsonParser p, JsonToken v) throws java.io.IOException {
    if (v == JsonToken.VALUE_NUMBER_INT) {
      JsonParser.NumberType nt = p.getNumberType();
      if (nt != JsonParser.NumberType.INT && nt != JsonParser.NumberType.LONG) return Double.NaN;
      long l = p.getLongValue();
      double d = (double) l;
      return Math.abs(d) > TWO_53 ? Double.NaN : d;
    }
    if (v == JsonToken.VALUE_NUMBER_FLOAT) {
      double d = p.getDoubleValue();
      return Double.isFinite(d) ? d : Double.NaN;
    }
    return Double.NaN;
  }

  private Row location(JsonParser p, JsonToken v) throws java.io.IOException {
    double lat = Double.NaN, lon = Double.NaN;
    if (v == JsonToken.START_OBJECT) {
      boolean hasLat = false, hasLon = false;
      JsonToken t;
      while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
        String name = p.currentName();
        JsonToken x = p.nextToken();
        if ("latitude".equals(name)) {
          if (hasLat) return null;
          hasLat = true;
          lat = number(p, x);
        } else if ("longitude".equals(name)) {
          if (hasLon) return null;
          hasLon = true;
          lon = number(p, x);
        } else if (x.isStructStart()) {
          return null;
        }
      }
      if (t != JsonToken.END_OBJECT) return null;
    } else if (v == JsonToken.START_ARRAY) {
      lat = number(p, p.nextToken());
      lon = number(p, p.nextToken());
      if (p.nextToken() != JsonToken.END_ARRAY) return null;
    } else {
      return null;
    }
    if (Double.isNaN(lat) || Double.isNaN(lon)) return null;
    if (lat < latMin || lat > latMax || lon < lonMin || lon > lonMax) return null;
    return RowFactory.create(lat, lon);
  }

  private static boolean hasSurrogate(String s) {
    for (int i = 0; i < s.length(); i++) {
      if (Character.isSurrogate(s.charAt(i))) return true;
    }
    return false;
  }

  /**
   * `YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|+HH:MM|-HH:MM]` (naive is UTC) as epoch
   * microseconds; Long.MIN_VALUE for any other text (the reference decides those).
   */
  static long isoMicros(String s) {
    int n = s.length();
    if (n < 19) return Long.MIN_VALUE;
    if (s.charAt(4) != '-' || s.charAt(7) != '-' || s.charAt(13) != ':' || s.charAt(16) != ':') {
      return Long.MIN_VALUE;
    }
    char sep = s.charAt(10);
    if (sep != 'T' && sep != ' ') return Long.MIN_VALUE;
    int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
    int hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
    if ((year | month | day | hour | minute | second) < 0) return Long.MIN_VALUE;
    if (year < 1000 || year > 9998) return Long.MIN_VALUE;
    int i = 19;
    long fraction = 0;
    if (i < n && s.charAt(i) == '.') {
      int start = ++i;
      while (i < n && i - start < 7 && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
        fraction = fraction * 10 + (s.charAt(i) - '0');
        i++;
      }
      int len = i - start;
      if (len < 1 || len > 6) return Long.MIN_VALUE;
      for (int k = len; k < 6; k++) fraction *= 10;
    }
    int offsetSeconds = 0;
    if (i < n) {
      char c = s.charAt(i);
      if (c == 'Z' && i + 1 == n) {
        i++;
      } else if ((c == '+' || c == '-') && i + 6 == n && s.charAt(i + 3) == ':') {
        int oh = digits(s, i + 1, 2), om = digits(s, i + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59) return Long.MIN_VALUE;
        offsetSeconds = (c == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        i += 6;
      } else {
        return Long.MIN_VALUE;
      }
    }
    if (i != n) return Long.MIN_VALUE;
    try {
      LocalDateTime local = LocalDateTime.of(year, month, day, hour, minute, second);
      long epoch = local.toEpochSecond(ZoneOffset.UTC) - offsetSeconds;
      return epoch * 1_000_000L + fraction;
    } catch (DateTimeException e) {
      return Long.MIN_VALUE;
    }
  }

  private static int digits(String s, int from, int count) {
    int v = 0;
    for (int k = from; k < from + count; k++) {
      char c = s.charAt(k);
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  }
}
