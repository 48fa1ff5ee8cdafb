package io.peerflash.replication.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.security.cert.CertificateException;
import org.junit.jupiter.api.Test;

class RaftPeerCertificatesTest {
  final TestPki pki = new TestPki("PeerFlash CA");

  @Test
  void aNodeCertificateNamesItsNode() throws Exception {
    assertThat(RaftPeerCertificates.nodeId(pki.node("n1").certificate())).isEqualTo("n1");
  }

  @Test
  void aClientCertificateNamesNoNodeWhateverItsCommonName() {
    assertThatThrownBy(() -> RaftPeerCertificates.nodeId(pki.client("n1", "admin").certificate()))
        .isInstanceOf(CertificateException.class)
        .hasMessageContaining("not a node certificate");
  }

  @Test
  void aNodeCertificateNeedsTheNodeUriOfItsCommonName() {
    assertThatThrownBy(
            () ->
                RaftPeerCertificates.nodeId(
                    pki.node("n1", "CN=n1,OU=node,O=PeerFlash", null).certificate()))
        .isInstanceOf(CertificateException.class)
        .hasMessageContaining("urn:peerflash:node:n1");
    assertThatThrownBy(
            () ->
                RaftPeerCertificates.nodeId(
                    pki.node("n1", "CN=n1,OU=node,O=PeerFlash", "n2").certificate()))
        .isInstanceOf(CertificateException.class)
        .hasMessageContaining("[n2]");
  }

  @Test
  void aCertificateWithoutTheNodeUnitIsRefused() {
    assertThatThrownBy(
            () ->
                RaftPeerCertificates.nodeId(
                    pki.node("n1", "CN=n1,O=PeerFlash", "n1").certificate()))
        .isInstanceOf(CertificateException.class)
        .hasMessageContaining("need OU=node");
  }
}
