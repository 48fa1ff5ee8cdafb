package io.peerflash.replication.control;

import java.security.cert.CertificateException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;

/**
 * The node id a Raft peer's certificate names, by the conventions of {@code peerflash certs}: a
 * node certificate has the subject {@code CN=<node-id>, OU=node, O=PeerFlash} and the SAN URI
 * {@code urn:peerflash:node:<node-id>}. Anything else (a client certificate, OU=client, whatever
 * its CN) names no node and is never admitted to Raft.
 */
final class RaftPeerCertificates {
  static final String NODE_URI_PREFIX = "urn:peerflash:node:";
  private static final int SAN_URI = 6;

  private RaftPeerCertificates() {}

  /**
   * The node id of a node certificate whose chain has already been verified.
   *
   * @throws CertificateException naming what is missing, for any other certificate
   */
  static String nodeId(X509Certificate leaf) throws CertificateException {
    String subject = leaf.getSubjectX500Principal().getName();
    List<String> cns = new ArrayList<>();
    List<String> ous = new ArrayList<>();
    try {
      for (Rdn rdn : new LdapName(subject).getRdns()) {
        if (rdn.getType().equalsIgnoreCase("CN")) {
          cns.add(String.valueOf(rdn.getValue()));
        } else if (rdn.getType().equalsIgnoreCase("OU")) {
          ous.add(String.valueOf(rdn.getValue()));
        }
      }
    } catch (InvalidNameException e) {
      throw new CertificateException("unreadable subject " + subject, e);
    }
    if (!ous.equals(List.of("node"))) {
      throw new CertificateException(
          "not a node certificate (OU " + ous + ", need OU=node): " + subject);
    }
    if (cns.size() != 1 || cns.get(0).isEmpty()) {
      throw new CertificateException("a node certificate needs exactly one CN: " + subject);
    }
    String id = cns.get(0);
    List<String> nodeUris = new ArrayList<>();
    Collection<List<?>> sans;
    try {
      sans = leaf.getSubjectAlternativeNames();
    } catch (CertificateParsingException e) {
      throw new CertificateException("unreadable subject alternative names: " + subject, e);
    }
    if (sans != null) {
      for (List<?> san : sans) {
        if (san.size() == 2
            && san.get(0) instanceof Integer type
            && type == SAN_URI
            && san.get(1) instanceof String uri
            && uri.startsWith(NODE_URI_PREFIX)) {
          nodeUris.add(uri.substring(NODE_URI_PREFIX.length()));
        }
      }
    }
    if (!nodeUris.equals(List.of(id))) {
      throw new CertificateException(
          "node certificate "
              + subject
              + " must carry exactly the SAN URI "
              + NODE_URI_PREFIX
              + id
              + ", has node URIs "
              + nodeUris);
    }
    return id;
  }
}
