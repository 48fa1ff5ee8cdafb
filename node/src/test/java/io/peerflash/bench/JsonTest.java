package io.peerflash.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
  @Test
  void writesAndReadsBackEveryKind() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("s", "a \"quoted\" \\ line\nand\ttab \u0001");
    m.put("i", 42);
    m.put("l", 1L << 40);
    m.put("d", 123.456789);
    m.put("tiny", 0.0000125);
    m.put("nan", Double.NaN);
    m.put("t", true);
    m.put("n", null);
    m.put("list", List.of(1, 2.5, "x"));
    m.put("empty", Map.of());
    for (String text : List.of(Json.write(m), Json.pretty(m))) {
      Object back = Json.parse(text);
      assertThat(back).isInstanceOf(Map.class);
      Map<?, ?> b = (Map<?, ?>) back;
      assertThat(new java.util.ArrayList<Object>(b.keySet())).containsExactlyElementsOf(m.keySet());
      assertThat(b.get("s")).isEqualTo(m.get("s"));
      assertThat(b.get("i")).isEqualTo(42.0);
      assertThat(b.get("l")).isEqualTo((double) (1L << 40));
      assertThat((Double) b.get("d")).isCloseTo(123.457, org.assertj.core.data.Offset.offset(1e-9));
      assertThat(b.get("tiny")).isEqualTo(0.0000125);
      assertThat(b.get("nan")).isNull();
      assertThat(b.get("t")).isEqualTo(true);
      assertThat(b.get("n")).isNull();
      assertThat(b.get("list")).isEqualTo(List.of(1.0, 2.5, "x"));
      assertThat(b.get("empty")).isEqualTo(Map.of());
    }
  }

  @Test
  void numbersNeverUseExponents() {
    assertThat(Json.write(List.of(1e-7, 1234567.0, 2.0e20))).doesNotContain("e", "E");
    assertThat(Json.write(12.0)).isEqualTo("12");
  }

  @Test
  void prettyKeepsNumberListsOnOneLine() {
    String text = Json.pretty(Map.of("p", List.of(List.of(50.0, 120.5), List.of(99.0, 300.0))));
    assertThat(text).contains("[50, 120.5]");
  }

  @Test
  void parsesEscapesAndRejectsGarbage() {
    assertThat(Json.parse(" \"\\u0041\\/b\" ")).isEqualTo("A/b");
    assertThat(Json.parse("[-1.5e2]")).isEqualTo(List.of(-150.0));
    assertThatThrownBy(() -> Json.parse("{\"a\": }"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("offset 6");
    assertThatThrownBy(() -> Json.parse("[1, 2] x")).hasMessageContaining("after the value");
    assertThatThrownBy(() -> Json.parse("\"open")).hasMessageContaining("unexpected end");
    assertThatThrownBy(() -> Json.write(new Object())).isInstanceOf(IllegalArgumentException.class);
  }
}
