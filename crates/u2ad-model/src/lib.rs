//! The U2AD masked autoencoder and everything that trains or runs it, generic over the burn backend.
