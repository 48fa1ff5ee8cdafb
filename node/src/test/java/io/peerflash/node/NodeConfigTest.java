package io.peerflash.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class NodeConfigTest {
  private static NodeConfig with(String... keyValues) {
    Map<String, String> m = new HashMap<>();
    m.put("id", "n1");
    m.put("data-dir", "/tmp/n1-data");
    m.put("shared-dir", "/tmp/shared");
    m.put("insecure", "true");
    for (int i = 0; i < keyValues.length; i += 2) {
      m.put(keyValues[i], keyValues[i + 1]);
    }
    return NodeConfig.fromMap(m);
  }

  @Test
  void theReplicaLinkListensOnTheListenHostAtAnyFreePortUnlessToldOtherwise() {
    assertThat(with("listen", "10.0.0.5:7601").replicaLink()).isEqualTo("10.0.0.5:0");
    assertThat(with("replica-link", "on").replicaLink()).isEqualTo("127.0.0.1:0");
    assertThat(with("replica-link", "0.0.0.0:7650").replicaLink()).isEqualTo("0.0.0.0:7650");
    assertThat(with("replica-link", "off").replicaLink()).isEmpty();
  }

  @Test
  void aReplicaLinkSettingThatIsNoAddressIsRefusedNamingTheSetting() {
    assertThatThrownBy(() -> with("replica-link", "yes"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("replica-link must be on, off or HOST:PORT");
    assertThatThrownBy(() -> with("replica-link", "127.0.0.1:70000"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("replica-link port out of range");
  }
}
