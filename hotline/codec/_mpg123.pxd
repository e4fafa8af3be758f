# Declarations of the libmpg123 symbols _codec.pyx calls (feed API only).
from posix.types cimport off_t


cdef extern from "mpg123.h" nogil:
    ctypedef struct mpg123_handle:
        pass

    # enum mpg123_errors: message codes (control flow) and error codes
    enum:
        MPG123_DONE
        MPG123_NEW_FORMAT
        MPG123_NEED_MORE
        MPG123_ERR
        MPG123_OK
        MPG123_OUT_OF_MEM

    # enum mpg123_parms / mpg123_param_flags
    enum:
        MPG123_FLAGS
        MPG123_RESYNC_LIMIT
        MPG123_GAPLESS
        MPG123_QUIET
        MPG123_MONO_MIX
        MPG123_FREEFORMAT_SIZE

    # enum mpg123_channelcount, mpg123_enc_enum
    enum:
        MPG123_MONO
        MPG123_ENC_FLOAT_32

    int MPG123_API_VERSION

    # mpg123_info() is mpg123_info2() with int fields (the header remaps it)
    struct mpg123_frameinfo:
        int layer  # the only field read (Cython needs only the fields it touches)

    int mpg123_init()
    mpg123_handle *mpg123_new(const char *decoder, int *error)
    void mpg123_delete(mpg123_handle *mh)
    int mpg123_param(mpg123_handle *mh, int type, long value, double fvalue)
    int mpg123_format_none(mpg123_handle *mh)
    int mpg123_format(mpg123_handle *mh, long rate, int channels, int encodings)
    void mpg123_rates(const long **lst, size_t *number)
    int mpg123_open_feed(mpg123_handle *mh)
    int mpg123_feed(mpg123_handle *mh, const unsigned char *inp, size_t size)
    int mpg123_framebyframe_next(mpg123_handle *mh)
    int mpg123_framebyframe_decode(mpg123_handle *mh, off_t *num, unsigned char **audio,
                                   size_t *nbytes)
    int mpg123_getformat(mpg123_handle *mh, long *rate, int *channels, int *encoding)
    int mpg123_info(mpg123_handle *mh, mpg123_frameinfo *mi)
    const char *mpg123_plain_strerror(int errcode)
    int mpg123_errcode(mpg123_handle *mh)
