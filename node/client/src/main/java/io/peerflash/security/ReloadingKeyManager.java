package io.peerflash.security;

import java.net.Socket;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedKeyManager;

/**
 * The key manager of a {@link TlsDirectory}: a node presents its server pair to clients and its
 * client pair to the peers it calls; a client presents its client pair. Each handshake takes the
 * pair in force.
 */
final class ReloadingKeyManager extends X509ExtendedKeyManager {
  private static final String SERVER_ALIAS = "server@";
  private static final String CLIENT_ALIAS = "client@";

  private final TlsDirectory directory;

  ReloadingKeyManager(TlsDirectory directory) {
    this.directory = directory;
  }

  @Override
  public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
    return serverAlias(keyType);
  }

  @Override
  public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
    return serverAlias(keyType);
  }

  @Override
  public String chooseEngineClientAlias(String[] keyTypes, Principal[] issuers, SSLEngine engine) {
    return clientAlias(keyTypes);
  }

  @Override
  public String chooseClientAlias(String[] keyTypes, Principal[] issuers, Socket socket) {
    return clientAlias(keyTypes);
  }

  @Override
  public String[] getServerAliases(String keyType, Principal[] issuers) {
    String a = serverAlias(keyType);
    return a == null ? null : new String[] {a};
  }

  @Override
  public String[] getClientAliases(String keyType, Principal[] issuers) {
    String a = clientAlias(new String[] {keyType});
    return a == null ? null : new String[] {a};
  }

  /*
   * The alias names the snapshot: a handshake asks for the chain and for the key in separate
   * calls, and a reload in between must not pair a new chain with an old key. The server's list
   * of accepted issuers is ignored on purpose: the one CA file decides, and a server may
   * announce a CA list from before a rotation.
   */
  private String serverAlias(String keyType) {
    TlsMaterial m = directory.material();
    if (m.serverChain == null || !keyTypeMatches(keyType, m.serverKey)) {
      return null;
    }
    return SERVER_ALIAS + m.generation;
  }

  private String clientAlias(String[] keyTypes) {
    TlsMaterial m = directory.material();
    if (keyTypes == null) {
      return CLIENT_ALIAS + m.generation;
    }
    for (String t : keyTypes) {
      if (keyTypeMatches(t, m.clientKey)) {
        return CLIENT_ALIAS + m.generation;
      }
    }
    return null;
  }

  @Override
  public X509Certificate[] getCertificateChain(String alias) {
    TlsMaterial m = material(alias);
    if (m == null) {
      return null;
    }
    X509Certificate[] chain = alias.startsWith(SERVER_ALIAS) ? m.serverChain : m.clientChain;
    return chain == null ? null : chain.clone();
  }

  @Override
  public PrivateKey getPrivateKey(String alias) {
    TlsMaterial m = material(alias);
    if (m == null) {
      return null;
    }
    return alias.startsWith(SERVER_ALIAS) ? m.serverKey : m.clientKey;
  }

  private TlsMaterial material(String alias) {
    if (alias == null) {
      return null;
    }
    int at = alias.indexOf('@');
    if (at < 0) {
      return null;
    }
    try {
      return directory.retained(Long.parseLong(alias.substring(at + 1)));
    } catch (NumberFormatException e) {
      return null;
    }
  }

  private static boolean keyTypeMatches(String keyType, PrivateKey key) {
    if (keyType == null) {
      return true;
    }
    String algorithm = key.getAlgorithm();
    // "EC_EC" / "EC_RSA": an EC key whose certificate is signed with EC / RSA (TLS 1.2 names).
    return keyType.equals(algorithm) || keyType.startsWith(algorithm + "_");
  }
}
