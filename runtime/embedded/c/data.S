/* The model, the test images and their labels, from files in the build directory (run.sh puts them there). */
    .section .rodata.slimnet_data, "a"
    .balign 4
    .global model_start, model_end, images_start, images_end, labels_start, labels_end
model_start:
    .incbin "model.slim"
model_end:
    .balign 4
images_start:
    .incbin "images.bin"
images_end:
labels_start:
    .incbin "labels.bin"
labels_end:

    .section .note.GNU-stack, "", %progbits
