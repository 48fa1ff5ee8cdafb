package io.peerflash.cli;

public final class PeerFlashCli {
  public static void main(String[] args) {}
}
